#include "comm/mesh.h"

#include <string.h>

int mesh_init(Mesh *m, MeshDims d, Err *e)
{
    memset(m, 0, sizeof *m);
    m->dims = d;
    m->world = group_world();
    int rank = group_rank(m->world);
    if (group_size(m->world) != d.dp * d.tp * d.pp)
        return err_set(e, "mesh %dx%dx%d does not match %d ranks", d.dp, d.tp, d.pp,
                       group_size(m->world));
    m->me = mesh_coord_of(d, rank);
    MeshCoord c = m->me;
    m->dp = group_split(m->world, c.tp + c.pp * d.tp, c.dp);
    m->tp = group_split(m->world, c.dp + c.pp * d.dp, c.tp);
    m->pp = group_split(m->world, c.tp + c.dp * d.tp, c.pp);
    if (!m->dp || !m->tp || !m->pp) return err_set(e, "out of memory creating rank groups");
    return 0;
}

void mesh_free(Mesh *m)
{
    group_free(m->dp);
    group_free(m->tp);
    group_free(m->pp);
    memset(m, 0, sizeof *m);
}
