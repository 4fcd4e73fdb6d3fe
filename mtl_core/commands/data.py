"""`python -m mtl_core data prepare|check`: rebuild the data folder from the public originals and check it."""
from __future__ import annotations

from pathlib import Path

from mtl_core.commands.common import add_data_dir_argument, command_parser, run_command
from mtl_core.data.loading import DataError
from mtl_core.data.originals import CHECKSUMS, REPOSITORIES, check, download, prepare
from mtl_core.settings import DEFAULT_DATA_DIR, Settings


def main(argv: list[str] | None = None) -> int:
    """`python -m mtl_core data prepare`: rebuild the data folder from the public originals (data/originals.py)."""
    parser = command_parser("data", "Rebuild intent/, sentiment/ and oos/ from the public originals and check "
                                    "every file's SHA-256.")
    commands = parser.add_subparsers(dest="command", required=True)
    prep = commands.add_parser("prepare", help="build the data folder")
    prep.add_argument("--out", type=Path, required=True, help="data folder to write (then: MTL_DATA_DIR=OUT)")
    prep.add_argument("--from", dest="originals", type=Path, default=Path("originals"),
                      help="folder holding the originals, one folder per repository as cloned: "
                           + ", ".join(f"{r.folder}/ ({r.github})" for r in REPOSITORIES) + " (default: originals)")
    prep.add_argument("--download", action="store_true",
                      help="first download the missing original files from GitHub into --from (needs internet)")
    verify = commands.add_parser("check", help="check a built data folder's SHA-256s (nothing is written)")
    add_data_dir_argument(verify)
    args = parser.parse_args(argv)

    def work() -> str:
        if args.command == "check":
            folder = Path(args.data_dir or Settings.from_env().training_data_dir)
            differences = check(folder)
            if differences:
                raise DataError(f"{folder}: {len(differences)} file(s) differ from the data the reported numbers "
                                "were measured on:\n  " + "\n  ".join(differences))
            return f"{folder}: all {len(CHECKSUMS)} files match their SHA-256"
        if args.download:
            download(args.originals)
        differences = prepare(args.out, args.originals)
        if differences:
            raise DataError(f"{len(differences)} file(s) differ from the data the reported numbers were measured "
                            "on:\n  " + "\n  ".join(differences))
        use = ("every command reads it by default" if args.out.resolve() == DEFAULT_DATA_DIR
               else f"use it with MTL_DATA_DIR={args.out} or --data-dir")
        return f"{args.out}: every file matches its SHA-256; {use}"

    return run_command(work)
