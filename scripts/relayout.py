#!/usr/bin/env python3
"""Move faultline's sources to the "a folder is a library" layout (docs/architecture.md,
"Libraries"), by rules rather than by a file list, so that it can be run on any recent tree and
run again on its own result (it is idempotent: a second run changes nothing).

What it does, in order:
  1. places every file under control/ and shim/ by the RULES below (globs -> folders); a file
     no rule names is placed by the CMake target that builds it today, then by the folder of
     the first project header it includes; what is still unplaced is reported and left alone;
  2. resolves every #include "..." of every C/C++ file the way the compiler does today (the
     including file's own directory, then the include directories the targets add) and
     rewrites it to the root-relative path of the file's new place ("policy/policy.h");
  3. moves the files (git mv), writes the CMake files of the new folders (each globs its own
     folder, so files added later join the right library), points the top-level CMakeLists
     at them, and reports every line of a replaced CMake file that its template does not
     carry (compared with the tree the templates were written for);
  4. rewrites mentions of moved paths in every other text file (docs, scripts, comments, other
     CMake files) and applies a few known fix-ups; reports what it could not do;
  5. checks the result (also with --dry-run, so it is the layering check on the new layout): every include names its folder, and each library includes only the
     libraries below it (LAYERS); violations are reported, not fixed.

Usage: scripts/relayout.py [--root DIR] [--dry-run] [--no-format] [--place GLOB=FOLDER/ ...]
  On a tree in the old layout (e.g. main before the move), from its top directory:
    git show layout:scripts/relayout.py > /tmp/relayout.py
    python3 /tmp/relayout.py --root . --dry-run     # the plan and what needs a look
    python3 /tmp/relayout.py --root .               # the move (git mv; nothing is committed)
  A file no rule places: add --place 'control/new_thing*=controller/' and run it again.
Exit status: 0 clean, 1 something needs a look (see the report), 2 usage/IO error.
"""
from __future__ import annotations

import argparse
import fnmatch
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

# The commit the CMake templates below were written against: lines of a replaced CMake file
# that are not in this commit's version are reported (someone added them since).
BASE_COMMIT = "62a51e5"

# Placement rules: first match wins. A target ending in "/" is a folder (the file keeps its
# name); otherwise it is the new path. Only files under these old roots are placed.
OLD_ROOTS = ("control/", "shim/")
RULES: list[tuple[str, str]] = [
    ("control/*/CMakeLists.txt", "DROP"),
    ("control/CMakeLists.txt", "DROP"),
    # The call table, below everything: the shim, the compiler and the CLI all expand it.
    ("shim/calls*.def", "calls/"),
    ("shim/calls*.inc", "calls/"),
    ("control/calls*", "calls/"),
    # The policy compiler.
    ("control/policy*", "policy/"),
    ("control/net_policy*", "policy/"),
    ("control/site_policy*", "policy/"),
    ("control/toml_safe*", "policy/"),
    ("control/glob*", "policy/"),
    ("control/units*", "policy/"),
    # Which system calls stand for which calls: plain policy data (edits.cpp checks a live
    # fault against it), so the compiler's library, not the seccomp supervisor's.
    ("control/seccomp/filter.h", "policy/seccomp_filter.h"),
    ("control/seccomp/filter.cpp", "policy/seccomp_filter.cpp"),
    # The control block: reader, writer, session lifecycle (shim and CLI both).
    ("control/session*", "session/"),
    ("control/block*", "session/"),
    # Never inside a target: the controller.
    ("control/durability/*", "controller/durability/"),
    ("control/seccomp/*", "controller/seccomp/"),
    ("control/experiment/*", "controller/experiment/"),
    ("control/launcher*", "controller/"),
    ("control/inspect*", "controller/"),
    ("control/edits*", "controller/"),
    ("control/api*", "controller/"),
    ("control/explore*", "controller/"),
    ("control/control_error*", "controller/"),
    ("control/elf_read*", "controller/"),
    ("control/cli/*", "cli/"),
    # shim/: the engine's files (ENGINE below) go to shim/engine/, the rest stays.
    ("shim/CMakeLists.txt", "KEEP"),
    ("shim/exports.map.in", "KEEP"),
]
# The libraries, lowest first, and what each may include (besides include/ and itself).
LAYERS: dict[str, set[str]] = {
    "calls": set(),
    "policy": {"calls"},
    "session": {"calls", "policy"},
    "shim/engine": {"calls", "policy", "session"},
    "shim": {"calls", "policy", "session", "shim/engine"},
    "controller/durability": {"calls", "policy", "session"},
    "controller/seccomp": {"calls", "policy", "session", "shim/engine"},
    "controller": {"calls", "policy", "session", "controller/durability", "controller/seccomp"},
    "controller/experiment": {"calls", "policy", "session", "controller", "controller/durability",
                              "controller/seccomp"},
    "cli": {"calls", "policy", "session", "controller", "controller/durability",
            "controller/seccomp", "controller/experiment"},
}
# Single headers a library may include from a folder it may not include otherwise: the event
# line formatter is the shim's, shared by `faultline events --json` so that the two are the same
# bytes by construction.
EXCEPTIONS: dict[str, set[str]] = {"cli": {"shim/engine/event_line.h"}}
# Old CMake target -> folder, for a file no rule names (a file of faultline_control is then
# placed by its first include among these folders).
TARGET_FOLDER = {"faultline_api": "controller/", "faultline_experiment": "controller/experiment/",
                 "faultline_seccomp": "controller/seccomp/", "faultline_durability": "controller/durability/"}
CONTROL_FOLDERS = ("calls/", "policy/", "session/")
# Where a quoted include is looked for after the including file's own directory: the include
# directories the targets add today (in the order faultline_control exports them), then the
# project root of the new layout (so that a second run resolves "policy/policy.h").
SEARCH = ["include", "control", "build/generated", "shim", "control/durability", "control/seccomp",
          "control/experiment", "control/cli", "tests/integration", "tests/unit",
          "examples/resilience", "."]
# Includes of unmoved files in these trees are left alone (tests and examples are not
# libraries; the examples are meant to be copied out of the tree).
LEAVE_ALONE = ("tests/", "examples/", "bench/")
GENERATED = {"faultline_config.h"}  # configure_file() outputs (cmake/config.cmake)
SOURCE_EXT = (".c", ".cc", ".cpp", ".h", ".hpp", ".def", ".inc", ".in")
SKIP_DIRS = {".git", "build", ".cache"}
# Literal fix-ups the path rewriting cannot infer: (file, old, new). Reported when neither the
# old nor the new text is found.
FIXUPS = [
    ("tests/integration/run_test.cpp", '"#include \\"calls.def\\"\\n"',
     '"#include \\"calls/calls.def\\"\\n"'),
    ("tests/integration/run_test.cpp",
     'const std::string shim_dir = std::string(FAULTLINE_SOURCE_DIR) + "/shim";',
     'const std::string shim_dir = std::string(FAULTLINE_SOURCE_DIR);'),
    ("tests/unit/CMakeLists.txt",
     "target_include_directories(unit_tests PRIVATE ${PROJECT_SOURCE_DIR}/control/durability)\n", ""),
    ("cli/cli.h", "shared controller code in control/,", "shared controller code in controller/,"),
    ("controller/explore_runner.h", "nothing outside control/ includes it",
     "nothing outside controller/ includes it"),
    ("CMakeLists.txt", "add_subdirectory(control)\nadd_subdirectory(shim)\n",
     "# One folder, one library (docs/architecture.md, \"Libraries\"), lowest first.\n"
     "add_subdirectory(calls)\nadd_subdirectory(policy)\nadd_subdirectory(session)\n"
     "add_subdirectory(shim)\nadd_subdirectory(controller)\nadd_subdirectory(cli)\n"),
]

report: list[str] = []
needs_look = False


def note(msg: str, problem: bool = False) -> None:
    global needs_look
    report.append(("!! " if problem else "   ") + msg)
    if problem:
        needs_look = True


def git(root: Path, *args: str, check: bool = True) -> str:
    r = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
    if check and r.returncode:
        raise RuntimeError(f"git {' '.join(args)}: {r.stderr.strip()}")
    return r.stdout


def all_files(root: Path) -> list[str]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS and not d.startswith("build")]
        for f in filenames:
            out.append(os.path.normpath(os.path.join(rel, f)))
    return sorted(out)


INCLUDE_RE = re.compile(r'^(\s*#\s*include\s*)"([^"]+)"', re.M)


def includes_of(text: str) -> list[str]:
    return [m.group(2) for m in INCLUDE_RE.finditer(text)]


def resolve(root: Path, files: set[str], includer: str, name: str) -> str | None:
    """The file the compiler opens today for #include "name" in includer (best effort: one
    search list for all targets)."""
    own = os.path.dirname(includer)
    for d in [own] + SEARCH:
        p = os.path.normpath(os.path.join(d, name))
        if p in files:
            return p
        if d == "build/generated" and (name in GENERATED or (root / d / name).exists()):
            return "GENERATED"
    return None


def engine_sources(root: Path) -> set[str]:
    """What faultline_engine builds today, read from shim/CMakeLists.txt's source list."""
    cm = root / "shim/CMakeLists.txt"
    if not cm.exists():
        return set()
    m = re.search(r"add_library\(faultline_engine\s+STATIC\s+([^)]*)\)", cm.read_text())
    if not m:
        return set()
    return {"shim/" + w for w in m.group(1).split() if w.endswith((".cpp", ".c"))}


def old_target_sources(root: Path) -> dict[str, str]:
    """control/ source -> the old target that compiles it."""
    out = {}
    for cm in ["control/CMakeLists.txt", "control/seccomp/CMakeLists.txt",
               "control/durability/CMakeLists.txt", "control/experiment/CMakeLists.txt"]:
        p = root / cm
        if not p.exists():
            continue
        base = os.path.dirname(cm)
        for m in re.finditer(r"add_library\((\w+)\s+(?:STATIC|OBJECT|SHARED)\s+([^)]*)\)", p.read_text()):
            for w in m.group(2).split():
                if w.endswith(".cpp"):
                    out[os.path.normpath(os.path.join(base, w))] = m.group(1)
    return out


def cmake_links(text: str) -> list[tuple[str, str, str]]:
    """(target, scope, dependency) of every target_link_libraries naming one of our targets."""
    out = []
    for m in re.finditer(r"target_link_libraries\(\s*(\w+)([^)]*)\)", text):
        scope = "PRIVATE"
        for w in m.group(2).split():
            if w in ("PUBLIC", "PRIVATE", "INTERFACE"):
                scope = w
            elif w.startswith("faultline_"):
                out.append((m.group(1), scope, w))
    return out


def rule_for(path: str, extra: list[tuple[str, str]]) -> str | None:
    for pat, dest in extra + RULES:
        if fnmatch.fnmatchcase(path, pat):
            if dest in ("DROP", "KEEP"):
                return dest
            return dest + os.path.basename(path) if dest.endswith("/") else dest
    return None


def plan_moves(root: Path, files: list[str], texts: dict[str, str],
               extra: list[tuple[str, str]]) -> tuple[dict[str, str], list[str]]:
    fileset = set(files)
    moves: dict[str, str] = {}
    drops: list[str] = []
    unplaced: list[str] = []
    engine = engine_sources(root)
    targets = old_target_sources(root)
    for f in files:
        if not f.startswith(OLD_ROOTS):
            continue
        dest = rule_for(f, extra)
        if dest == "DROP":
            drops.append(f)
        elif dest == "KEEP":
            pass
        elif dest:
            moves[f] = dest
        elif f in engine:
            moves[f] = "shim/engine/" + os.path.basename(f)
        elif f.startswith("shim/"):
            pass  # decided below: engine header or interposer
        elif f in targets and targets[f] in TARGET_FOLDER:
            moves[f] = TARGET_FOLDER[targets[f]] + os.path.basename(f)
            note(f"{f}: no rule; placed by its CMake target {targets[f]} -> {moves[f]}")
        else:
            unplaced.append(f)
    # Engine headers: what the engine's files include from shim/, to a fixpoint.
    if engine:
        changed = True
        while changed:
            changed = False
            for f, dest in list(moves.items()):
                if not dest.startswith("shim/engine/") or f not in texts:
                    continue
                for inc in includes_of(texts[f]):
                    r = resolve(root, fileset, f, inc)
                    if r and r.startswith("shim/") and r not in moves and rule_for(r, extra) is None:
                        moves[r] = "shim/engine/" + os.path.basename(r)
                        changed = True
        for f, dest in moves.items():
            src = f[:-2] + ".cpp"
            if dest.startswith("shim/engine/") and f.endswith(".h") and src in fileset \
                    and src not in moves:
                note(f"{f} goes to shim/engine/ (engine files include it) but {src} stays in "
                     "shim/: check that the engine calls nothing it defines (that would be an "
                     "upward link; move such functions into the engine)", problem=True)
        for f in files:
            if f.startswith("shim/") and f.endswith(".h") and f not in moves:
                stem = f[:-2] + ".cpp"
                if stem in engine:
                    moves[f] = "shim/engine/" + os.path.basename(f)
    # What no rule names: placed with the first project file it includes that has a place
    # (its own header, usually), else with the first placed file that includes it.
    changed = True
    while unplaced and changed:
        changed = False
        for f in list(unplaced):
            dest = None
            stem = os.path.splitext(f)[0]
            for ext in (".cpp", ".c", ".h"):  # a header goes with its own source, and back
                if stem + ext != f and stem + ext in moves and moves[stem + ext] != "DROP":
                    dest = os.path.dirname(moves[stem + ext]) + "/"
                    break
            if dest:
                moves[f] = dest + os.path.basename(f)
                unplaced.remove(f)
                changed = True
                note(f"{f}: no rule; placed with {stem}.* -> {moves[f]}")
                continue
            for inc in includes_of(texts.get(f, "")) if dest is None else []:
                r = resolve(root, fileset, f, inc)
                if r in moves and moves[r].startswith(CONTROL_FOLDERS + ("controller/",)):
                    dest = os.path.dirname(moves[r]) + "/"
                    break
            if dest is None:
                for g, t in texts.items():
                    if g in moves and any(resolve(root, fileset, g, i) == f for i in includes_of(t)):
                        dest = os.path.dirname(moves[g]) + "/"
                        break
            if dest:
                moves[f] = dest + os.path.basename(f)
                unplaced.remove(f)
                changed = True
                note(f"{f}: no rule; placed by its includes -> {moves[f]} (check; add a rule)",
                     problem=True)
    for f in unplaced:
        note(f"{f}: NO RULE PLACES IT; left where it is (add --place '{f}=FOLDER/')", problem=True)
    for f in drops:
        moves[f] = "DROP"
    # Two files may not land on one path.
    seen: dict[str, str] = {}
    for f, d in list(moves.items()):
        if d != "DROP" and d in seen:
            note(f"{f} and {seen[d]} would both become {d}; neither moved", problem=True)
            del moves[f]
            moves.pop(seen[d], None)
        seen[d] = f
    return moves, unplaced


def library_of(path: str) -> str | None:
    best = None
    for lib in LAYERS:
        if path.startswith(lib + "/") and "/" not in path[len(lib) + 1:]:
            best = lib
    return best


def rewrite_includes(root: Path, files: list[str], texts: dict[str, str],
                     moves: dict[str, str]) -> dict[str, str]:
    """New text of every C/C++ file whose includes change (keyed by the file's OLD path)."""
    fileset = set(files)
    out = {}
    for f, text in texts.items():
        new_f = moves.get(f, f)

        def repl(m: re.Match) -> str:
            name = m.group(2)
            r = resolve(root, fileset, f, name)
            if r is None:
                if not name.startswith("faultline/"):
                    note(f"{f}: #include \"{name}\" resolves to no file in the tree; left as is",
                         problem=not f.startswith(LEAVE_ALONE))
                return m.group(0)
            if r == "GENERATED" or r.startswith("include/"):
                return m.group(0)
            target = moves.get(r, r)
            if target == "DROP":
                return m.group(0)
            if r not in moves and f not in moves and r.startswith(LEAVE_ALONE) \
                    and f.startswith(LEAVE_ALONE):
                return m.group(0)
            if r not in moves and not r.startswith(OLD_ROOTS) and r.startswith(LEAVE_ALONE):
                return m.group(0)
            return f'{m.group(1)}"{target}"'

        new = INCLUDE_RE.sub(repl, text)
        if new != text:
            out[f] = new
        # Ambiguities: a bare name that two search directories hold.
        for name in includes_of(text):
            if "/" in name:
                continue
            hits = [d for d in SEARCH[:-1] if os.path.normpath(os.path.join(d, name)) in fileset]
            own = os.path.normpath(os.path.join(os.path.dirname(f), name)) in fileset
            if len(hits) > 1 and not own:
                note(f"{f}: \"{name}\" is in {', '.join(hits)}; took {hits[0]} as the compiler "
                     "would through faultline_control's order (check)", problem=True)
        del new_f
    return out


# ---- CMake templates: each folder globs its own sources --------------------------------
HDR = "# {what}\n# Sources: every .cpp in this folder (CONFIGURE_DEPENDS: a new file joins on the next build).\n"
BASE_OBJECT = """
file(GLOB FL_{up}_SOURCES CONFIGURE_DEPENDS ${{CMAKE_CURRENT_SOURCE_DIR}}/*.cpp)
add_library(faultline_{name} OBJECT ${{FL_{up}_SOURCES}})
# Includes name their folder ("calls/calls.h"): the project root and include/ only.
target_include_directories(faultline_{name} PRIVATE ${{PROJECT_SOURCE_DIR}} ${{PROJECT_SOURCE_DIR}}/include)
set_target_properties(faultline_{name} PROPERTIES CXX_VISIBILITY_PRESET hidden
                      VISIBILITY_INLINES_HIDDEN ON)
# The shim links with --gc-sections (shim/CMakeLists.txt): what only the CLI calls is dropped.
target_compile_options(faultline_{name} PRIVATE -ffunction-sections -fdata-sections -Os)
"""
TEMPLATES = {
    "calls/CMakeLists.txt": HDR.format(what="faultline_calls: the one table of interposed calls "
        "(calls.def) and what is derived from it (calls.h),\n# below every other library: the "
        "shim, the policy compiler and the CLI all expand it. Its objects go into\n# "
        "faultline_control (session/CMakeLists.txt).") + BASE_OBJECT.format(name="calls", up="CALLS"),
    "policy/CMakeLists.txt": HDR.format(what="faultline_policy: the policy compiler (TOML -> "
        "fault slots), @net/@dns and site keys, globs, units,\n# and the seccomp filter's "
        "policy side. Its objects go into faultline_control (session/).")
        + BASE_OBJECT.format(name="policy", up="POLICY") + """# toml++ is used header-only so that it is compiled into our objects with hidden visibility
# and never clashes with a copy the target program might carry. PRIVATE: no header of this
# folder includes toml++. TOML_FLOAT_CHARCONV: floats through std::from_chars, not a
# stringstream imbued with the classic locale (~800 KiB of locale machinery in the shim).
target_compile_definitions(faultline_policy PRIVATE ${FL_TOML_DEFINITIONS})
target_include_directories(faultline_policy SYSTEM PRIVATE ${TOMLPP_INCLUDE_DIRS})
""",
    "session/CMakeLists.txt": HDR.format(what="faultline_session: the control block's reader and "
        "writer and the session's life (create, attach,\n# publish, remove), used by both the "
        "shim and the CLI.") + BASE_OBJECT.format(name="session", up="SESSION") + """
# faultline_control: the three folders below the shim and the CLI (calls/, policy/, session/)
# as one static, PIC archive: the shim and the CLI link it, and it is installed as
# faultline::control (cmake/package.cmake). Its PUBLIC include directories are what its
# headers need: the project root ("policy/policy.h") and include/ ("faultline/...").
# BUILD_INTERFACE: installed, consumers see only include/.
add_library(faultline_control STATIC $<TARGET_OBJECTS:faultline_calls>
            $<TARGET_OBJECTS:faultline_policy> $<TARGET_OBJECTS:faultline_session>)
set_target_properties(faultline_control PROPERTIES LINKER_LANGUAGE CXX)
target_include_directories(faultline_control
  PUBLIC $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}> $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
         $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
target_link_libraries(faultline_control PUBLIC rt)
""",
    "shim/engine/CMakeLists.txt": HDR.format(what="faultline_engine: the shim's engine (decide, "
        "fd and socket tables, events, stacks, waits, power-cut\n# tracking) as an ordinary "
        "library: the unit tests and the seccomp supervisor link it without a preload.") + """
file(GLOB FL_ENGINE_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cpp)
add_library(faultline_engine STATIC ${FL_ENGINE_SOURCES})
set_target_properties(faultline_engine PROPERTIES CXX_VISIBILITY_PRESET hidden
                      VISIBILITY_INLINES_HIDDEN ON)
# Function and data sections: the shim links with --gc-sections, which drops what only the CLI
# uses of the engine and of faultline_control.
target_compile_options(faultline_engine PRIVATE -ftls-model=initial-exec -ffunction-sections
                                                -fdata-sections)
# No spdlog or fmt in the shim: what it writes inside the target (diagnostics, event lines)
# is built by text_buf.cpp without allocating, since a signal handler may lead there.
# generated/: faultline_config.h (the platform probes).
target_include_directories(faultline_engine PRIVATE ${CMAKE_BINARY_DIR}/generated)
target_link_libraries(faultline_engine PUBLIC faultline_control dl pthread)
# libunwind's headers only: stack.cpp loads the library with dlopen(RTLD_LOCAL) (see there).
target_include_directories(faultline_engine SYSTEM PRIVATE ${LIBUNWIND_INCLUDE_DIRS})
""",
    "shim/CMakeLists.txt": """# libfaultline.so: the preloaded shim, the interposers of this folder over the engine
# (engine/). Sources: every .cpp in this folder, not below it (CONFIGURE_DEPENDS).
add_subdirectory(engine)

set(FL_EXPORTS_MAP ${CMAKE_CURRENT_BINARY_DIR}/exports.map)
add_custom_command(
  OUTPUT ${FL_EXPORTS_MAP}
  COMMAND ${CMAKE_CXX_COMPILER} -E -P -x c -I${PROJECT_SOURCE_DIR}
          ${CMAKE_CURRENT_SOURCE_DIR}/exports.map.in -o ${FL_EXPORTS_MAP}
  DEPENDS exports.map.in ${PROJECT_SOURCE_DIR}/calls/calls.def
  COMMENT "Generating the shim's version script from calls.def")
add_custom_target(faultline_exports DEPENDS ${FL_EXPORTS_MAP})

file(GLOB FL_SHIM_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cpp)
add_library(faultline_shim SHARED ${FL_SHIM_SOURCES})
add_dependencies(faultline_shim faultline_exports)
set_target_properties(faultline_shim PROPERTIES
  OUTPUT_NAME faultline
  CXX_VISIBILITY_PRESET hidden
  VISIBILITY_INLINES_HIDDEN ON
  LINK_DEPENDS ${FL_EXPORTS_MAP})
target_compile_options(faultline_shim PRIVATE -ftls-model=initial-exec -fno-plt -ffunction-sections
                                              -fdata-sections)
target_include_directories(faultline_shim PRIVATE ${CMAKE_BINARY_DIR}/generated)
target_link_libraries(faultline_shim PRIVATE faultline_engine)
# libstdc++ linked in, not loaded: binding libstdc++.so's ~3,300 relocations was 88% of the
# shim's start-up, and a target then carried libstdc++ and libm it never asked for. libgcc_s
# stays shared (-shared-libgcc): glibc unwinds a cancelled thread with libgcc_s, and our
# personality routine must use the same unwinder's _Unwind_SetGR (a static copy aborts). The
# version script keeps every C++ symbol local (tests/unit/shim_elf_test.cpp checks DT_NEEDED and
# the exported names), so a C++ program's own libstdc++ never meets ours.
# --as-needed drops libm, which g++ adds and nothing in the shim uses.
target_link_options(faultline_shim PRIVATE
  -Wl,--version-script=${FL_EXPORTS_MAP} -Wl,-z,now -Wl,--no-undefined -Wl,--as-needed
  -Wl,--gc-sections -Wl,-z,noseparate-code -static-libstdc++ -shared-libgcc)
# lib/faultline, not the multiarch libdir: the documented path is /usr/lib/faultline/libfaultline.so.
install(TARGETS faultline_shim LIBRARY DESTINATION lib/faultline COMPONENT runtime)
""",
    "controller/durability/CMakeLists.txt": HDR.format(what="faultline_durability: the undo area "
        "and the revert of a power cut (revert.h), for `faultline\n# run`, `faultline powercut` "
        "and explore. An object library: its objects go into faultline_api (which is\n# "
        "installed), so the installed package needs no extra target.") + """
file(GLOB FL_DURABILITY_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cpp)
add_library(faultline_durability OBJECT ${FL_DURABILITY_SOURCES})
target_include_directories(faultline_durability PRIVATE ${PROJECT_SOURCE_DIR}
                                                        ${PROJECT_SOURCE_DIR}/include)
set_target_properties(faultline_durability PROPERTIES CXX_VISIBILITY_PRESET hidden
                      VISIBILITY_INLINES_HIDDEN ON POSITION_INDEPENDENT_CODE ON)
""",
    "controller/CMakeLists.txt": HDR.format(what="faultline_api: the controller, code that never "
        "runs inside a target: launching under a session,\n# reading it, editing it, exploring "
        "call sites, and the C++ API (include/faultline/faultline.hpp).\n# Installed as "
        "faultline::faultline (cmake/package.cmake). fmt is compiled in header-only, so\n# "
        "neither the API's consumers nor the CLI need libfmt at run time.") + """
add_subdirectory(durability)
file(GLOB FL_API_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cpp)
add_library(faultline_api STATIC ${FL_API_SOURCES} $<TARGET_OBJECTS:faultline_durability>)
target_link_libraries(faultline_api PUBLIC faultline_control pthread)
target_include_directories(faultline_api SYSTEM PRIVATE ${TOMLPP_INCLUDE_DIRS})
target_compile_definitions(faultline_api PRIVATE FMT_HEADER_ONLY=1 ${FL_TOML_DEFINITIONS}
  FAULTLINE_INSTALLED_SHIM="${CMAKE_INSTALL_PREFIX}/lib/faultline/libfaultline.so")
# Hidden like the rest of the control library; the public API classes are marked
# FAULTLINE_API (default visibility), so a consumer's shared library can export them too.
set_target_properties(faultline_api PROPERTIES CXX_VISIBILITY_PRESET hidden
                      VISIBILITY_INLINES_HIDDEN ON OUTPUT_NAME faultline_api EXPORT_NAME faultline)

# The seccomp backend's supervisor; `faultline experiment`.
add_subdirectory(seccomp)
add_subdirectory(experiment)
""",
    "controller/seccomp/CMakeLists.txt": HDR.format(what="faultline_seccomp: the seccomp "
        "backend's supervisor (policy.md, \"Reaching the program\"), which\n# answers the trapped "
        "calls with the shim's engine (shim/engine/), linked here as an ordinary library;\n# "
        "the CLI links it. The filter (policy/seccomp_filter.h) is policy data, in "
        "faultline_control.") + """
file(GLOB FL_SECCOMP_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cpp)
add_library(faultline_seccomp STATIC ${FL_SECCOMP_SOURCES})
target_link_libraries(faultline_seccomp PUBLIC faultline_control faultline_engine pthread)
set_target_properties(faultline_seccomp PROPERTIES CXX_VISIBILITY_PRESET hidden
                      VISIBILITY_INLINES_HIDDEN ON)
""",
    "controller/experiment/CMakeLists.txt": HDR.format(what="faultline_experiment: the experiment "
        "engine behind `faultline experiment` (format and\n# validation, runner, probes, journal, "
        "report). nlohmann-json writes and reads the journal.") + """
file(GLOB FL_EXPERIMENT_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cpp)
add_library(faultline_experiment STATIC ${FL_EXPERIMENT_SOURCES})
target_link_libraries(faultline_experiment PUBLIC faultline_api nlohmann_json::nlohmann_json
                      PRIVATE fmt::fmt-header-only)
set_target_properties(faultline_experiment PROPERTIES CXX_VISIBILITY_PRESET hidden
                      VISIBILITY_INLINES_HIDDEN ON)
""",
    "cli/CMakeLists.txt": HDR.format(what="The `faultline` CLI, on top of the controller "
        "libraries.") + """
file(GLOB FL_CLI_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cpp)
add_executable(faultline ${FL_CLI_SOURCES})
target_compile_definitions(faultline PRIVATE FAULTLINE_VERSION="${PROJECT_VERSION}")
# The marker the shim looks up to stay inert in the controller (shim/init.cpp): exported from
# the executable's dynamic symbol table, and nothing else is.
target_link_options(faultline PRIVATE "LINKER:--export-dynamic-symbol=faultline_controller")
# fmt header-only: the installed CLI needs nothing beyond libc and libstdc++, so the prefix can
# be copied into a container image as one layer (examples/container).
target_link_libraries(faultline PRIVATE faultline_api faultline_experiment faultline_seccomp
                      fmt::fmt-header-only
                      CLI11::CLI11 nlohmann_json::nlohmann_json)
install(TARGETS faultline RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT runtime)
""",
}
TOML_DEFS = ("# toml++ header-only, hidden in our objects (policy/CMakeLists.txt says why).\n"
             "set(FL_TOML_DEFINITIONS TOML_HEADER_ONLY=1 TOML_EXCEPTIONS=1 TOML_FLOAT_CHARCONV=1)\n")
# The CMake files the templates replace, and what their old lines became (for the report).
REPLACED_CMAKE = ["control/CMakeLists.txt", "control/seccomp/CMakeLists.txt",
                  "control/durability/CMakeLists.txt", "control/experiment/CMakeLists.txt",
                  "shim/CMakeLists.txt"]

ARCH_SECTION = """## Libraries

One folder is one library; a library includes only the libraries below it, and always by
folder (`#include "policy/policy.h"`): the include roots are the project root and `include/`
(plus the build's `generated/` for `faultline_config.h`), so no private header is reachable by
bare name from another folder. Each folder's CMakeLists.txt builds every `.cpp` in it.

```
 cli/                    faultline (the CLI)
   │
 controller/experiment/  faultline_experiment
   │
 controller/             faultline_api  (launcher, inspect, edits, explore, the C++ API:
   │                                     never inside a target)
   ├── controller/durability/  faultline_durability (objects in faultline_api)
   └── controller/seccomp/     faultline_seccomp (the supervisor: answers trapped calls
         │                                        with the engine, in the controller)
         │                shim/  libfaultline.so (interposers, init)
         │                  │
         └──────────────► shim/engine/  faultline_engine (decide, fd/socket tables,
                            │            events, stacks, waits, power-cut tracking)
 session/  ─┐               │
 policy/   ─┼─ faultline_control ◄── everything above (three object libraries, one archive)
 calls/    ─┘
 include/faultline/  the shared-memory ABI and the public C++ API (faultline.hpp)
```

| folder | target | what | may include |
|---|---|---|---|
| `calls/` | `faultline_calls` (objects in `faultline_control`) | `calls.def`, the one table of interposed calls, and what is derived from it (`calls.h`: ids, families, errno names) | `include/` (today also `policy/net_policy.h`, for `dns_error_name` and `net_errno_plausible`: those belong in `calls/`) |
| `policy/` | `faultline_policy` (objects in `faultline_control`) | the policy compiler (`policy*.cpp`), @net/@dns keys (`net_policy`), explore's `site`/`record` keys (`site_policy`), TOML helpers, globs, the seccomp filter's policy side (`seccomp_filter`) | `calls/` |
| `session/` | `faultline_session` (objects in `faultline_control`) | the control block's reader and writer and the session's life, used by the shim and the CLI alike | `calls/`, `policy/` |
| `shim/engine/` | `faultline_engine` (static; the unit tests and the seccomp supervisor link it) | decide, fd and socket tables, events, stacks and sites, waits, @memory bookkeeping, power-cut tracking | `calls/`, `policy/`, `session/` |
| `shim/` | `faultline_shim` = `libfaultline.so` | `init.cpp` and one file per family of interposers; `exports.map.in` (the version script, from `calls/calls.def`) | the above and `shim/engine/` |
| `controller/` | `faultline_api` (static, installed as `faultline::faultline`) | never inside a target: launcher, inspect, edits, explore, the C++ API | `calls/`, `policy/`, `session/`, `controller/durability/`, `controller/seccomp/` |
| `controller/durability/` | `faultline_durability` (objects in `faultline_api`) | the undo area and the revert of a power cut | `calls/`, `policy/`, `session/` |
| `controller/seccomp/` | `faultline_seccomp` | the seccomp backend's supervisor, which runs the engine in the controller | `shim/engine/` and below |
| `controller/experiment/` | `faultline_experiment` | chaos experiments as code ([experiments.md](experiments.md)) | `controller/`, `controller/seccomp/` and below |
| `cli/` | `faultline` | the CLI | everything but `shim/` and `shim/engine/` |
| `include/faultline/` | — | `control_block.h` (the shared-memory ABI), `glob.h`, `seqlock.h`, `undo_log.h`, `faultline.hpp` (the C++ API, the only header installed) | nothing of the tree |
| `tests/unit`, `tests/integration`, `tests/fuzz` | tests | engine/compiler/block tests without a preload; real programs under the shim; libFuzzer targets | anything, by folder |
| `bench/`, `examples/` | — | per-call and whole-program costs (performance.md); policies, `resilience/`, `container/` | public API only |

`scripts/relayout.py --dry-run` checks this on the tree (every include names its folder,
each folder includes only those below it; its exit status is 1 if not): it moved the sources
here from the old `control/` + `shim/` layout, and still does so for a branch started before.

`cmake/package.cmake` installs the CLI and the shim (`runtime`) and, for the C++ API,
`faultline::faultline` with the static libraries it links (`dev`).

"""


def replace_arch_section(text: str) -> str:
    m = re.search(r"^## (Layout|Libraries)\n.*?(?=^## )", text, re.M | re.S)
    if not m:
        note("docs/architecture.md: no \"## Layout\" section to replace; Libraries section not written",
             problem=True)
        return text
    return text[:m.start()] + ARCH_SECTION + text[m.end():]


def path_map_regex(pairs: list[tuple[str, str]]) -> tuple[re.Pattern, dict[str, str]]:
    table = dict(pairs)
    alts = sorted(table, key=len, reverse=True)
    rx = re.compile(r"(?<![\w.-])(?<![\w.-]/)(" + "|".join(re.escape(a) for a in alts) + r")(?![\w-])")
    return rx, table


def check_layers(root: Path) -> None:
    """Every include of a library names its folder, and names only lower libraries."""
    files = all_files(root)
    fileset = set(files)
    for f in files:
        if not f.endswith(SOURCE_EXT):
            continue
        lib = library_of(f)
        if lib is None and f.startswith(("control/", "shim/", "calls/", "policy/", "session/",
                                         "controller/", "cli/")) and not f.endswith(".in"):
            note(f"{f}: in no library folder", problem=True)
            continue
        if lib is None:
            continue
        for inc in includes_of((root / f).read_text(errors="surrogateescape")):
            if inc.startswith("faultline/") or inc == "faultline_config.h":
                continue
            if "/" not in inc:
                note(f"{f}: #include \"{inc}\" does not name its folder", problem=True)
                continue
            if inc not in fileset:
                note(f"{f}: #include \"{inc}\" names no file of the tree", problem=True)
                continue
            to = library_of(inc)
            if to and to != lib and to not in LAYERS[lib] and inc not in EXCEPTIONS.get(lib, ()):
                note(f"{f}: includes {inc}: {lib}/ may not include {to}/ (docs/architecture.md)",
                     problem=True)



def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=str(Path(__file__).resolve().parent.parent))
    ap.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    ap.add_argument("--no-format", action="store_true", help="skip clang-format on rewritten files")
    ap.add_argument("--place", action="append", default=[], metavar="GLOB=FOLDER/",
                    help="an extra rule, tried before the built-in ones")
    args = ap.parse_args()
    root = Path(args.root).resolve()
    extra = []
    for p in args.place:
        g, _, d = p.partition("=")
        if not d:
            print(f"--place {p}: want GLOB=FOLDER/", file=sys.stderr)
            return 2
        extra.append((g, d))
    if not (root / "CMakeLists.txt").exists():
        print(f"{root}: not a faultline tree", file=sys.stderr)
        return 2

    files = all_files(root)
    texts = {f: (root / f).read_text(errors="surrogateescape") for f in files
             if f.endswith(SOURCE_EXT) and not f.startswith("build")}
    moves, _ = plan_moves(root, files, texts, extra)
    new_texts = rewrite_includes(root, files, texts, moves)

    real_moves = {f: d for f, d in moves.items() if d != "DROP"}
    print(f"relayout: {len(real_moves)} files to move, {len(new_texts)} files with rewritten "
          f"includes, {sum(1 for d in moves.values() if d == 'DROP')} CMake files replaced")
    for f, d in sorted(real_moves.items()):
        print(f"  {f} -> {d}")

    # CMake: links between our targets that the old files have and the templates lack are
    # carried (appended to the template of the folder defining the target); other lines the
    # templates do not carry are reported.
    templates = dict(TEMPLATES)
    old_cmake = {cm: (root / cm).read_text() for cm in REPLACED_CMAKE if (root / cm).exists()
                 and not (cm == "shim/CMakeLists.txt" and "add_subdirectory(engine)" in (root / cm).read_text())}
    new_links = {(t, d) for text in templates.values() for t, _, d in cmake_links(text)}
    defined_in = {m.group(1): cm for cm, text in templates.items()
                  for m in re.finditer(r"add_(?:library|executable)\((\w+)", text)}
    carried: list[str] = []
    for cm, text in old_cmake.items():
        for t, scope, d in cmake_links(text):
            if (t, d) in new_links or t not in defined_in:
                continue
            line = f"target_link_libraries({t} {scope} {d})"
            templates[defined_in[t]] += f"# Carried from the old {cm}.\n{line}\n"
            new_links.add((t, d))
            carried.append(line)
            note(f"{defined_in[t]}: carried from the old {cm}: {line}")
    template_tokens = set(re.split(r"[\s()]+", "\n".join(templates.values())))
    base_ok = subprocess.run(["git", "-C", str(root), "cat-file", "-e", BASE_COMMIT],
                             capture_output=True).returncode == 0
    for cm, text in old_cmake.items():
        if not base_ok:
            note(f"{cm}: base commit {BASE_COMMIT} not in this repository; cannot tell what "
                 "was added to it since the templates were written: review it by hand", problem=True)
            continue
        old = set(l.strip() for l in git(root, "show", f"{BASE_COMMIT}:{cm}", check=False).splitlines())
        for l in text.splitlines():
            s = l.strip()
            if not s or s in old:
                continue
            tokens = [w for w in re.split(r"[\s()]+", s) if w and not re.fullmatch(
                r"[\w/.-]+\.(cpp|c)|\$<TARGET_OBJECTS:\w+>|STATIC|OBJECT|SHARED", w)]
            if all(w in template_tokens for w in tokens):
                continue  # sources (globbed), links carried, words the templates have
            if s.startswith("#"):
                note(f"{cm}: comment added since {BASE_COMMIT} not carried: {s}")
            elif "target_include_directories" in s and "CMAKE_CURRENT_SOURCE_DIR" in s:
                note(f"{cm}: folder include directory dropped on purpose (includes name their "
                     f"folder): {s}")
            else:
                note(f"{cm}: line added since {BASE_COMMIT} not carried by the new CMake "
                     f"files: {s}", problem=True)
    # Other CMake files that name sources by old path get the path rewriting below.

    if args.dry_run:
        if real_moves:
            note("layering not checked: the tree is not in the new layout yet (it is checked "
                 "after a real run)")
        else:
            check_layers(root)
        print("\n".join(report))
        return 1 if needs_look else 0

    old_dirs = [(o, n) for o, n in (("control/cli/", "cli/"), ("control/durability/", "controller/durability/"),
                                     ("control/seccomp/", "controller/seccomp/"),
                                     ("control/experiment/", "controller/experiment/")) if (root / o).is_dir()]
    in_git = (root / ".git").exists()
    # 1. includes, in place (old paths), then the moves.
    for f, t in new_texts.items():
        (root / f).write_text(t, errors="surrogateescape")
    for f, d in sorted(moves.items()):
        src = root / f
        if d == "DROP":
            if in_git:
                git(root, "rm", "-q", "-f", f)
            else:
                src.unlink()
            continue
        (root / d).parent.mkdir(parents=True, exist_ok=True)
        if in_git and git(root, "ls-files", f).strip():
            git(root, "mv", f, d)
        else:
            shutil.move(str(src), str(root / d))
    # Empty old directories.
    for old in ("control/durability", "control/seccomp", "control/experiment", "control/cli", "control"):
        p = root / old
        if p.is_dir() and not any(p.iterdir()):
            p.rmdir()
    if (root / "control").exists():
        left = [str(q.relative_to(root)) for q in (root / "control").rglob("*") if q.is_file()]
        if left:
            note(f"control/ still holds {len(left)} file(s): {', '.join(left[:8])}", problem=True)

    # 2. CMake files of the new layout.
    for cm, text in templates.items():
        p = root / cm
        folder = os.path.dirname(cm)
        if not (root / folder).is_dir():
            note(f"{folder}/ does not exist; {cm} not written", problem=True)
            continue
        if not p.exists() or p.read_text() != text:
            p.write_text(text)
    top = root / "CMakeLists.txt"
    t = top.read_text()
    if "set(FL_TOML_DEFINITIONS" not in t:
        anchor = "add_subdirectory(control)\n" if "add_subdirectory(control)\n" in t else "add_subdirectory(calls)\n"
        if anchor in t:
            t = t.replace(anchor, TOML_DEFS + anchor, 1)
            top.write_text(t)

    text_changed: set[str] = set()
    # 3. Known fix-ups (before the path rewriting, which would change their text), then
    # moved paths named in text (docs, scripts, comments, other CMake files).
    for f, old, new in FIXUPS:
        p = root / f
        if not p.exists():
            note(f"fix-up for {f}: file missing", problem=True)
            continue
        t = p.read_text()
        if old in t:
            p.write_text(t.replace(old, new))
            text_changed.add(f)
            note(f"{f}: fix-up applied")
        elif new and new not in t:
            note(f"{f}: fix-up not applied (text not found): {old.strip()[:70]}", problem=True)
    # Moved paths named in text.
    pairs = [(f, d) for f, d in real_moves.items()]
    stems: dict[str, set[str]] = {}
    for f, d in real_moves.items():
        stems.setdefault(os.path.splitext(f)[0], set()).add(os.path.splitext(d)[0])
    stem_pairs = [(s, next(iter(n))) for s, n in stems.items() if len(n) == 1]
    for old, new in old_dirs:
        pairs.append((old, new))
        pairs.append((old.rstrip("/"), new.rstrip("/")))
    if pairs:
        rx, table = path_map_regex(pairs)
        stem_rx, stem_table = None, dict(stem_pairs)
        if stem_pairs:
            stem_rx = re.compile(r"(?<![\w.-])(?<![\w.-]/)(" + "|".join(
                re.escape(a) for a in sorted(stem_table, key=len, reverse=True)) + r")(?=\.\{)")
        me = os.path.relpath(Path(__file__).resolve(), root) if Path(__file__).resolve().is_relative_to(root) else None
        for f in all_files(root):
            if f == me or f.endswith((".png", ".gz", ".so", ".a")) or f.startswith(".git"):
                continue
            p = root / f
            try:
                t = p.read_text()
            except (UnicodeDecodeError, OSError):
                continue
            n = rx.sub(lambda m: table[m.group(1)], t)
            if stem_rx:  # "control/toml_safe.{h,cpp}"
                n = stem_rx.sub(lambda m: stem_table[m.group(1)], n)
            if n != t:
                p.write_text(n)
                text_changed.add(f)
                note(f"{f}: moved paths named in its text rewritten")
    arch = root / "docs/architecture.md"
    if arch.exists():
        t = arch.read_text()
        n = replace_arch_section(t)
        if n != t:
            arch.write_text(n)

    # 4. Format what was rewritten (include order within blocks, comments longer than 100).
    if not args.no_format and shutil.which("clang-format"):
        touched = [moves.get(f, f) for f in new_texts if moves.get(f, f) != "DROP"]
        touched = sorted(set(touched) | text_changed)
        touched = [f for f in touched if f.endswith((".c", ".cpp", ".h", ".hpp"))]
        for i in range(0, len(touched), 50):
            subprocess.run(["clang-format", "-i", *touched[i:i + 50]], cwd=root)

    check_layers(root)
    print("\n".join(report) if report else "   nothing to report")
    print("relayout: done;" + (" some things need a look (!!)" if needs_look else " clean"))
    return 1 if needs_look else 0


if __name__ == "__main__":
    sys.exit(main())
