#ifndef MPITRAIN_PBCONV_H
#define MPITRAIN_PBCONV_H
/* Config structs <-> their protobuf messages, shared by the plan and the
 * checkpoint manifest. */
#include "models/model.h"
#include "mpitrain.pb-c.h"
#include "worker/optim/optim.h"

void model_config_to_pb(const ModelConfig *c, Mpitrain__ModelConfigPB *m);
ModelConfig model_config_from_pb(const Mpitrain__ModelConfigPB *m);
/* The pb's name points at a static string. */
void optim_config_to_pb(const OptimConfig *o, Mpitrain__OptimConfigPB *p);
/* -1 if the optimizer name is unknown (kind is then left OPT_ADAMW). */
int optim_config_from_pb(const Mpitrain__OptimConfigPB *p, OptimConfig *o);

struct TrainConfig;
/* The zo fields of a train config. */
void zo_config_to_pb(float eps, float scale, int samples, int check_every, float outlier,
                     Mpitrain__ZoConfig *z);

#endif
