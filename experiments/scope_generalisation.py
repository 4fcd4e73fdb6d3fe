"""The out-of-scope detector on text of other kinds than CLINC150 (never used to choose anything):

    python -m experiments.scope_generalisation [--data-dir DIR]

SemEval sentiment test tweets (none is a Banking77 request), hand-written general-knowledge questions,
encyclopaedia sentences and chit-chat (should be flagged) and hand-written banking requests (should be
accepted). Prints the shares and every wrong decision; writes experiments/results/scope_generalisation.json.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from experiments import save_result
from mtl_core.data.loading import read_texts
from mtl_core.serving.predictor import Predictor
from mtl_core.settings import Settings

# Hand-made out-of-scope sentences of kinds absent from CLINC: general knowledge, encyclopaedia, chit-chat.
HAND_OUT = [
    # general-knowledge questions
    "What is the capital of Australia?",
    "How far is the Moon from the Earth?",
    "Who wrote Pride and Prejudice?",
    "Why is the sky blue?",
    "How many bones are in the human body?",
    "When did the Second World War end?",
    "What is the boiling point of water at sea level?",
    "Which planet has the most moons?",
    "Who painted the Mona Lisa?",
    "What language is spoken in Brazil?",
    "How do vaccines train the immune system?",
    "What is the difference between a virus and a bacterium?",
    "How tall is Mount Everest?",
    # encyclopaedia sentences
    "The Amazon is the largest tropical rainforest in the world.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "The Treaty of Westphalia was signed in 1648.",
    "Jupiter is the fifth planet from the Sun and the largest in the Solar System.",
    "The violin is a wooden string instrument in the viol family.",
    "Mitochondria are membrane-bound organelles found in most eukaryotic cells.",
    "The Great Barrier Reef lies off the coast of Queensland.",
    "Beethoven composed nine symphonies between 1800 and 1824.",
    "Basalt is a fine-grained volcanic rock formed from rapidly cooling lava.",
    "The printing press was developed by Johannes Gutenberg around 1440.",
    "Football is played by two teams of eleven players on a rectangular pitch.",
    "The city was founded by Roman settlers in the first century.",
    "Penguins are flightless seabirds that live almost exclusively in the Southern Hemisphere.",
    # chit-chat
    "Hi there, how's your day going?",
    "I just watched a great movie last night.",
    "Do you like cats or dogs better?",
    "Tell me a joke.",
    "I'm so tired today, I barely slept.",
    "What's your favourite colour?",
    "The weather is lovely this afternoon.",
    "My sister is getting married next month!",
    "Can you recommend a good book to read?",
    "Haha that's hilarious",
    "Good morning!",
    "I think pineapple belongs on pizza.",
    "Let's go hiking this weekend.",
    "Thanks, that's all for now, bye!",
]

# Hand-made requests a Banking77 customer could send (not copied from the data).
HAND_IN = [
    "My card still hasn't arrived, it's been two weeks.",
    "How do I change my PIN?",
    "I think someone stole my card, please freeze it.",
    "Why was I charged a fee for withdrawing cash?",
    "The exchange rate on my last payment looks wrong.",
    "Can I top up my account with a bank transfer?",
    "My transfer to my landlord hasn't gone through yet.",
    "How do I verify my identity in the app?",
    "I want to close my account.",
    "Is there a limit on how much I can top up?",
    "The ATM gave me less cash than I asked for.",
    "Can I get a virtual card for online shopping?",
    "My contactless payments stopped working.",
    "There's a payment on my statement I don't recognise.",
    "How long does a card delivery take to the US?",
    "My top-up was cancelled, why?",
    "Can I use Apple Pay with your card?",
    "I need to update my home address.",
    "What currencies can I hold in my account?",
    "Why is my cash withdrawal still pending?",
]


def decisions(predictor: Predictor, texts: list[str]) -> list[tuple[str, bool, float]]:
    return [(t, p["intent"].in_scope, round(p["intent"].scope_score, 4))
            for t, p in zip(texts, predictor.predict(texts, show_progress=len(texts) > 256), strict=True)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.scope_generalisation", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Settings.from_env().training_data_dir)
    args = parser.parse_args(argv)
    predictor = Predictor.load()
    tweets = decisions(predictor, read_texts(args.data_dir / "sentiment" / "test.csv"))
    outside, inside = decisions(predictor, HAND_OUT), decisions(predictor, HAND_IN)
    report = {"command": "python -m experiments.scope_generalisation",
              "tweets_flagged": sum(not ok for _, ok, _ in tweets) / len(tweets), "tweets": len(tweets),
              "tweets_accepted": [t for t in tweets if t[1]],
              "hand_out_flagged": sum(not ok for _, ok, _ in outside), "hand_out": len(outside),
              "hand_in_accepted": sum(ok for _, ok, _ in inside), "hand_in": len(inside),
              "highest_scoring_out": max(outside, key=lambda t: t[2]), "lowest_scoring_in": min(inside, key=lambda t: t[2]),
              "wrong": [t for t in outside if t[1]] + [t for t in inside if not t[1]]}
    save_result("scope_generalisation", report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
