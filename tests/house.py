#!/usr/bin/env python3
"""The house check (docs/architecture.md): reads every #include "..." of the
source floors and fails on

  * an arrow up a floor: base < sharding < models, comm < worker <
    coordinator < launch (models never includes comm, nor comm models);
  * a circle between modules: foo.c and foo.h are one module, and no two
    modules may reach each other through their includes;
  * a circle between folders (rooms): worker/loop and worker/method/zo are
    rooms, and the arrows between rooms must point one way too.

Prints one line per finding and exits 1, or prints nothing and exits 0.
usage: tests/house.py [SOURCE_ROOT]   (--rooms: print the room graph)"""
import os
import re
import sys
from collections import defaultdict

FLOORS = {'base': 0, 'sharding': 1, 'models': 2, 'comm': 2, 'worker': 3,
          'coordinator': 4, 'launch': 5}
SIDEWAYS = {('models', 'comm'), ('comm', 'models')}
INCLUDE = re.compile(r'\s*#\s*include\s+"([^"]+)"')


def module(path):
    return os.path.splitext(path)[0]


def read_includes(root):
    """{module: {module it includes: first 'file:line' that does}}"""
    graph = defaultdict(dict)
    for top in FLOORS:
        for d, _, files in os.walk(os.path.join(root, top)):
            for f in sorted(files):
                if not f.endswith(('.c', '.h')):
                    continue
                rel = os.path.relpath(os.path.join(d, f), root)
                me = module(rel)
                graph[me]
                with open(os.path.join(root, rel), errors='replace') as fh:
                    for n, line in enumerate(fh, 1):
                        m = INCLUDE.match(line)
                        if not m:
                            continue
                        inc = m.group(1)
                        if inc.split('/')[0] not in FLOORS:
                            inc = os.path.join(os.path.dirname(rel), inc)
                        target = module(os.path.normpath(inc))
                        if target.split('/')[0] in FLOORS and target != me:
                            graph[me].setdefault(target, f"{rel}:{n}")
    return graph


def circles(graph):
    """Strongly connected components of more than one node (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]
    sys.setrecursionlimit(100000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def arrows_inside(graph, nodes):
    """'a -> b (file:line)' for every edge between members of one circle."""
    return [f"{a} -> {b} ({where})" for a in nodes for b, where in sorted(graph[a].items())
            if b in nodes]


def rooms(graph):
    g = defaultdict(dict)
    for a, targets in graph.items():
        for b, where in targets.items():
            ra, rb = os.path.dirname(a), os.path.dirname(b)
            g[ra]
            if ra != rb:
                g[ra].setdefault(rb, where)
    return g


def main():
    args = [a for a in sys.argv[1:] if not a.startswith('--')]
    root = args[0] if args else os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
    graph = read_includes(root)
    room_graph = rooms(graph)
    if '--rooms' in sys.argv:
        for r in sorted(room_graph):
            print(f"{r}: {' '.join(sorted(room_graph[r]))}")
        return 0
    bad = []
    for a in sorted(graph):
        for b, where in sorted(graph[a].items()):
            fa, fb = a.split('/')[0], b.split('/')[0]
            if FLOORS[fb] > FLOORS[fa] or (fa, fb) in SIDEWAYS:
                bad.append(f"{where}: {fa}/ includes {b} (up a floor)")
    for c in circles(graph):
        bad.append(f"module circle: {' <-> '.join(c)}: " + '; '.join(arrows_inside(graph, c)))
    for c in circles(room_graph):
        bad.append(f"room circle: {' <-> '.join(c)}: " + '; '.join(arrows_inside(room_graph, c)))
    for line in bad:
        print(line)
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
