"""How often the out-of-scope detector flags banking requests that are not Banking77 intents.

    python -m experiments.scope_banking_domains --clinc DIR   (DIR: clinc/oos-eval's data/ folder)

"Out of scope" means none of the 77 Banking77 intents, not "not about banking". CLINC150's banking and
credit-card domains (left out of the data folder because they are banking requests) show how the
shipped detector treats them: some of their intents have a Banking77 twin (pin_change, card_declined,
report_lost_card), others do not (interest_rate, credit_score, apr). Reads their test queries, prints
the share flagged per intent and writes experiments/results/scope_banking_domains.json.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from experiments import save_result
from mtl_core.serving.predictor import Predictor

DOMAINS = ("banking", "credit_cards")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.scope_banking_domains", description=__doc__.splitlines()[0])
    parser.add_argument("--clinc", type=Path, required=True, help="clinc/oos-eval's data/ folder")
    args = parser.parse_args(argv)
    data = json.loads((args.clinc / "data_full.json").read_text())
    domains = json.loads((args.clinc / "domains.json").read_text())
    wanted = {intent: domain for domain in DOMAINS for intent in domains[domain]}
    rows = [(text, intent) for text, intent in data["test"] if intent in wanted]
    predictor = Predictor.load()
    found = predictor.predict([text for text, _ in rows])
    flagged = np.array([p["intent"].rejected for p in found])
    intents = np.array([intent for _, intent in rows])
    per_intent = {intent: float(flagged[intents == intent].mean()) for intent in sorted(wanted)}
    report = {"command": "python -m experiments.scope_banking_domains --clinc DIR", "queries": len(rows),
              "flagged_share": float(flagged.mean()),
              "per_domain": {d: float(flagged[[wanted[i] == d for i in intents]].mean()) for d in DOMAINS},
              "per_intent": per_intent}
    save_result("scope_banking_domains", report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
