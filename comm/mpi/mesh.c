#include "comm/mpi/mesh.h"

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
    m->mp = group_split(m->world, c.dp, rank);
    if (!m->dp || !m->tp || !m->pp || !m->mp) return err_set(e, "out of memory creating rank groups");
    int ends = d.pp > 1 && (c.pp == 0 || c.pp == d.pp - 1);
    Group *emb = group_split(m->world, ends ? c.tp + c.dp * d.tp : d.tp * d.dp + rank, c.pp);
    if (ends) m->emb = emb;
    else group_free(emb);
    return 0;
}

void mesh_free(Mesh *m)
{
    group_free(m->dp);
    group_free(m->tp);
    group_free(m->pp);
    group_free(m->emb);
    group_free(m->mp);
    memset(m, 0, sizeof *m);
}

CommStats mesh_stats(const Mesh *m)
{
    CommStats total = {0};
    Group *groups[] = {m->world, m->dp, m->tp, m->pp, m->emb, m->mp};
    for (int i = 0; i < 6; i++) {
        if (!groups[i]) continue;
        const CommStats *s = group_stats(groups[i]);
        total.bytes_sent += s->bytes_sent;
        total.exposed_s += s->exposed_s;
        total.overlapped_s += s->overlapped_s;
        total.calls += s->calls;
    }
    return total;
}
