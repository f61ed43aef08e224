#ifndef MPITRAIN_MESH_H
#define MPITRAIN_MESH_H
/* The 3-D rank grid and its groups, all derived from the grid arithmetic in
 * sharding/partition.h by MPI_Comm_split, never listed by hand. */
#include "comm/mpi/comm.h"
#include "sharding/partition.h"

typedef struct {
    MeshDims dims;
    MeshCoord me;
    Group *world;
    Group *dp;   /* same (tp, pp): gradient all-reduce / ZeRO */
    Group *tp;   /* same (dp, pp): tensor-parallel all-reduces */
    Group *pp;   /* same (tp, dp): pipeline send/recv */
    Group *mp;   /* same dp: one model replica ("machine") of tp x pp ranks */
    Group *emb;  /* first and last pipeline stage of one (tp, dp): the tied
                    embedding's two copies; NULL on other stages or pp = 1 */
} Mesh;

int mesh_init(Mesh *m, MeshDims d, Err *e);
/* Communication of this rank over all its groups. */
CommStats mesh_stats(const Mesh *m);
void mesh_free(Mesh *m);

#endif
