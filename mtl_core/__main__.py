"""`python -m mtl_core <command> ...`: the one entry to every command (mtl_core/commands/).

    python -m mtl_core --help            lists the commands
    python -m mtl_core predict --help    one command's options
"""
from __future__ import annotations

import importlib
import sys

# command -> (module under mtl_core.commands, one line for the list); a module is imported only when its
# command runs, so `bulk` (Ray) and `train` cost nothing to the others.
COMMANDS = {
    "predict": ("predict", "both tasks' labels and scores for a .txt or .csv of sentences, as CSV"),
    "embed": ("embed", "the 384-number embedding of each sentence, as .npy or .csv"),
    "add_task": ("add_task", "a new task from your own labelled examples, added to a checkpoint"),
    "bulk": ("bulk", "score files of any size on Ray Data, resumable (needs requirements-bulk.txt)"),
    "train": ("train", "train the task layers and heads on the data folder"),
    "evaluate": ("evaluate", "a checkpoint's metrics on the dev or test split"),
    "fit_scope": ("fit_scope", "refit a checkpoint's out-of-scope detector"),
    "data": ("data", "rebuild the data folder from the public originals (prepare) or check it (check)"),
}


def usage() -> str:
    lines = ["usage: python -m mtl_core <command> [options]", "", "commands:"]
    lines += [f"  {name:<10} {summary}" for name, (_, summary) in COMMANDS.items()]
    lines += ["", "python -m mtl_core <command> --help shows a command's options"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"error: unknown command {name!r}; valid: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"mtl_core.commands.{COMMANDS[name][0]}")
    return module.main(rest)


if __name__ == "__main__":
    raise SystemExit(main())
