#!/usr/bin/python3
"""Makes DIR a PATH of only the commands a fresh machine would have.

A fresh minimal Debian 12 has the packages of priority "required" (and the
Essential ones), plus git and ca-certificates to clone the repository; the
scripts add launch/packages.sh's lists. This takes the closure of all those
under Depends/Pre-Depends (Recommends are never installed: setup.sh passes
--no-install-recommends), and links into DIR every command in /usr/bin,
/usr/sbin, /bin and /sbin whose file one of them owns (following
update-alternatives links). A test that calls anything else, found on this
machine only because someone installed it by hand, then fails here as it
would on a new machine.

It also refuses absolute command paths (/usr/bin/<name>) in the project's scripts
whose file no such package owns: PATH does not guard those.

Usage: tests/fresh_path.py DIR   (run from the project root)
"""
import os
import re
import subprocess
import sys

BIN_DIRS = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
SCANNED = ["tests", "launch", "bench", ".ci"]
FRESH_EXTRAS = ["git", "ca-certificates"]


def script_packages():
    out = subprocess.run(
        ["bash", "-c", 'source launch/packages.sh; '
         'printf "%s\\n" "${BUILD_PACKAGES[@]}" "${TEST_PACKAGES[@]}"'],
        check=True, capture_output=True, text=True).stdout
    return out.split()


def installed_packages():
    """name -> (priority, essential, dependency groups); provides map."""
    fmt = ("${Package}\\t${db:Status-Abbrev}\\t${Priority}\\t${Essential}\\t"
           "${Provides}\\t${Pre-Depends}\\t${Depends}\\n")
    out = subprocess.run(["dpkg-query", "-W", "-f=" + fmt], check=True,
                         capture_output=True, text=True).stdout
    pkgs, provides = {}, {}
    for line in out.splitlines():
        name, status, prio, ess, prov, pre, dep = line.split("\t")
        if not status.startswith("ii"):
            continue
        groups = [g for g in (pre + "," + dep).split(",") if g.strip()]
        pkgs[name] = (prio, ess, groups)
        for p in prov.split(","):
            if p.strip():
                provides.setdefault(bare(p), []).append(name)
    return pkgs, provides


def bare(dep):
    """'libc6:any (>= 2.34)' -> 'libc6'"""
    return re.split(r"[\s:(]", dep.strip(), 1)[0]


def closure(roots, pkgs, provides):
    seen, todo = set(), list(roots)
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        for group in pkgs[p][2]:
            for alt in group.split("|"):
                name = bare(alt)
                pick = [name] if name in pkgs else provides.get(name, [])
                if pick:
                    todo.append(pick[0])
                    break
    return seen


def owned_files(names):
    owned = set()
    for p in names:
        for lst in (f"/var/lib/dpkg/info/{p}.list",
                    f"/var/lib/dpkg/info/{p}:amd64.list"):
            if os.path.exists(lst):
                with open(lst) as f:
                    owned.update(os.path.realpath(x.strip()) for x in f)
    return owned


def link_commands(dest, owned):
    os.makedirs(dest, exist_ok=True)
    for old in os.listdir(dest):
        os.unlink(os.path.join(dest, old))
    count = 0
    for d in BIN_DIRS:
        for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            path = os.path.join(d, name)
            real = os.path.realpath(path)
            link = os.path.join(dest, name)
            if (real in owned and os.path.isfile(real)
                    and os.access(real, os.X_OK) and not os.path.lexists(link)):
                os.symlink(path, link)
                count += 1
    return count


def foreign_absolute_paths(owned):
    pat = re.compile(r"(?<![\w./$-])(/(?:usr/)?s?bin/[\w.+-]+)")
    bad = []
    for top in SCANNED:
        for d, _, files in os.walk(top):
            for fn in files:
                f = os.path.join(d, fn)
                try:
                    text = open(f, encoding="utf-8").read()
                except (UnicodeDecodeError, OSError):
                    continue
                for n, line in enumerate(text.splitlines(), 1):
                    for m in pat.finditer(line):
                        if os.path.realpath(m.group(1)) not in owned:
                            bad.append(f"{f}:{n}: {m.group(1)}")
    return bad


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: tests/fresh_path.py DIR")
    pkgs, provides = installed_packages()
    wanted = script_packages() + FRESH_EXTRAS
    missing = [p for p in wanted if p not in pkgs]
    if missing:
        sys.exit("fresh_path: not installed: " + " ".join(missing)
                 + " (launch/setup.sh installs them)")
    roots = [p for p, (prio, ess, _) in pkgs.items()
             if prio == "required" or ess == "yes"] + wanted
    names = closure(roots, pkgs, provides)
    owned = owned_files(names)
    bad = foreign_absolute_paths(owned)
    if bad:
        sys.exit("fresh_path: these commands come from no package that "
                 "launch/packages.sh installs (add it there):\n  "
                 + "\n  ".join(bad))
    n = link_commands(sys.argv[1], owned)
    print(f"fresh_path: {n} commands from {len(names)} packages "
          f"({len(pkgs)} installed here) in {sys.argv[1]}")


if __name__ == "__main__":
    main()
