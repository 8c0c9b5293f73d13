"""Write the items of the built-in generative tasks (finance/figures, health/leaflet-answers, climate/report-values).

The passages are fictional and were written for the Frugal project from the templates below; every company,
medicine, council and figure is invented. Run from the repository root:
``python domains/tools/make_generative_items.py``.
The output is deterministic (seeded). Each label is checked here: the answer (or, for a computed answer, each
figure it is computed from) appears verbatim in the passage, the computed value is re-derived from the parsed
passage figures, and no two items share a passage and question.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from evaluator.metrics.text import numeric_match, parse_number  # noqa: E402

COMPANIES = ["Norbridge Tools", "Calloway Foods", "Vesper Logistics", "Marrow Bay Energy", "Quillon Software",
             "Hartfield Textiles", "Ostrava Mining", "Pellucid Optics", "Brantwood Homes", "Kestrel Airways",
             "Lumen Dairy", "Sablewood Paper", "Tavistock Chemicals", "Oakhurst Retail", "Meridale Pharma",
             "Cobalt Ridge Motors", "Fennick Media", "Granby Steel", "Halloran Insurance", "Ivory Coast Shipping Co",
             "Juniper Telecom", "Larkspur Hotels", "Montrose Glass", "Northwind Rail", "Orchard Lane Bakeries"]
QUARTERS = ["first", "second", "third", "fourth"]
CURR = [("$", "dollars"), ("£", "pounds"), ("€", "euros")]


def pos(name: str) -> str:
    """The possessive of a name."""
    return name + ("'" if name.endswith("s") else "'s")


def money(rng: random.Random, lo: float, hi: float, unit: str) -> tuple[float, str]:
    """A figure with one decimal, and its text with thousands separators and ``unit``."""
    v = round(rng.uniform(lo, hi), 1)
    return v, f"{v:,.1f} {unit}"


def finance(rng: random.Random) -> list[dict]:
    """Earnings and loan passages; the answer is a figure (numeric)."""
    items = []
    for i in range(125):
        co = COMPANIES[i % len(COMPANIES)]
        sym, _ = CURR[i % 3]
        year = 2023 + i % 3
        q = QUARTERS[(i // 3) % 4]
        kind = i % 5
        if kind == 0:  # easy: one figure stated
            rev, rev_s = money(rng, 50, 900, "million")
            passage = f"{co} reported revenue of {sym}{rev_s} for the {q} quarter of {year}."
            question = f"What revenue did {co} report for the {q} quarter of {year}?"
            target, diff, value = f"{sym}{rev_s}", "easy", rev * 1e6
        elif kind == 1:  # medium: revenue and profit, ask profit
            rev, rev_s = money(rng, 200, 900, "million")
            prof, prof_s = money(rng, 5, 60, "million")
            eps = round(rng.uniform(0.05, 2.5), 2)
            passage = (f"In the {q} quarter of {year}, {co} grew revenue to {sym}{rev_s}. Net profit was "
                       f"{sym}{prof_s}, and earnings per share came to {sym}{eps:.2f}.")
            question = f"What was {pos(co)} net profit in the {q} quarter of {year}?"
            target, diff, value = f"{sym}{prof_s}", "medium", prof * 1e6
        elif kind == 2:  # medium: loan terms, ask the rate or the term
            amount = rng.randrange(5, 95) * 1000
            rate = round(rng.uniform(2.5, 11.9), 1)
            years = rng.choice([3, 4, 5, 7, 10, 15, 20, 25])
            fee = rng.randrange(1, 20) * 50
            passage = (f"{co} offers staff a loan of {sym}{amount:,} at a fixed annual interest rate of {rate}% "
                       f"over {years} years, with an arrangement fee of {sym}{fee:,}.")
            if i % 2:
                question, target, value = "What is the annual interest rate of the loan?", f"{rate}%", rate
            else:
                question, target, value = "Over how many years is the loan repaid?", f"{years}", years
            diff = "medium"
        elif kind == 3:  # hard: this year vs last year, ask last year's
            now, now_s = money(rng, 1.0, 9.5, "billion")
            before = round(now * rng.uniform(0.7, 0.97), 1)
            before_s = f"{before:,.1f} billion"
            passage = (f"{pos(co)} full-year {year} revenue reached {sym}{now_s}, compared with {sym}{before_s} in "
                       f"{year - 1}; the board proposed a final dividend of {sym}{round(rng.uniform(0.1, 0.9), 2):.2f}"
                       f" per share.")
            question = f"What was {pos(co)} revenue in {year - 1}?"
            target, diff, value = f"{sym}{before_s}", "hard", before * 1e9
        else:  # hard: one-step difference of two stated figures
            a = rng.randrange(120, 900)
            b = a + rng.randrange(5, 120)
            passage = (f"{co} ended {year} with {b:,} employees, up from {a:,} a year earlier, and opened "
                       f"{rng.randrange(2, 30)} new sites.")
            question = f"By how many employees did {pos(co)} headcount grow in {year}?"
            target, diff, value = f"{b - a}", "hard", b - a
            assert f"{a:,}" in passage and f"{b:,}" in passage
        if diff != "hard" or kind == 3:
            assert target in passage, (passage, target)
        assert numeric_match(target, [target]) and abs(parse_number(target) - value) <= 1e-6 * max(1, abs(value)), \
            (target, value)
        items.append({"id": f"fin-fig-{i + 1:03d}", "passage": passage, "question": question, "target": target,
                      "difficulty": diff})
    return items


MEDS = ["Dorvalin", "Quenzaprin", "Halventa", "Ostrelix", "Maprodine", "Tirvanol", "Celvaxin", "Brumelta",
        "Fenocort", "Lysandrel", "Pravenox", "Selbutrin", "Vantalog", "Zerimox", "Gallantrol", "Nuvestra",
        "Orfalin", "Pelmaxo", "Ruvidane", "Sumacet", "Teravil", "Ulmexa", "Voranta", "Wexlorin", "Yzonel"]
FORMS = [("tablet", "tablets"), ("capsule", "capsules")]
NUM_WORDS = {1: "one", 2: "two", 3: "three", 4: "four"}
GROUPS = [("pregnant women", ["pregnant women", "women who are pregnant", "pregnant people"]),
          ("people with kidney disease",
           ["people with kidney disease", "kidney disease", "anyone with kidney disease"]),
          ("children under 12", ["children under 12", "children under 12 years", "children younger than 12"]),
          ("people with asthma", ["people with asthma", "asthma", "anyone with asthma"]),
          ("people with liver disease", ["people with liver disease", "liver disease", "anyone with liver disease"]),
          ("breastfeeding mothers", ["breastfeeding mothers", "women who are breastfeeding", "breastfeeding women"]),
          ("people with a stomach ulcer", ["people with a stomach ulcer", "stomach ulcer", "a stomach ulcer"])]


def health(rng: random.Random) -> list[dict]:
    """Patient-leaflet passages; short answers with their accepted variants."""
    items = []
    for i in range(125):
        med = MEDS[i % len(MEDS)]
        one, many = FORMS[(i // 25) % 2]
        strength = rng.choice([5, 10, 20, 50, 100, 200, 250, 400, 500])
        dose = rng.choice([1, 2])
        hours = rng.choice([4, 6, 8, 12])
        maxday = dose * (24 // hours)
        days = rng.choice([3, 5, 7, 10])
        grp, grp_targets = GROUPS[(i * 3 + i // 7) % len(GROUPS)]
        kind = i % 5
        unit = one if dose == 1 else many
        leaflet = (f"{med} {strength} mg {many}. Adults: take {dose} {unit} every {hours} hours. Do not take more "
                   f"than {maxday} {many} in 24 hours. {med} is not suitable for {grp}.")
        if kind == 0:
            question, targets, diff = (f"How many {many} should an adult take at a time?",
                                       [f"{dose} {unit}", f"{NUM_WORDS[dose]} {unit}", str(dose), NUM_WORDS[dose]],
                                       "easy")
        elif kind == 1:
            question, targets, diff = ("How often should an adult take a dose?",
                                       [f"every {hours} hours", f"{hours} hours", f"once every {hours} hours"],
                                       "easy")
        elif kind == 2:
            question, targets, diff = (f"Who should not take {med}?", grp_targets, "medium")
        elif kind == 3:
            leaflet += f" If your symptoms last longer than {days} days, talk to your doctor."
            question, targets, diff = ("After how many days of symptoms should you talk to your doctor?",
                                       [f"{days} days", str(days), f"after {days} days", f"longer than {days} days"],
                                       "medium")
        else:
            child = max(1, dose - 1) if dose > 1 else 1
            child_h = hours + 2 if hours < 12 else 24
            child_unit = one if child == 1 else many
            leaflet = (f"{med} {strength} mg {many}. Adults: take {dose} {unit} every {hours} hours. Children aged "
                       f"12 to 17: take {child} {child_unit} every {child_h} hours. Do not give {med} to children "
                       f"under 12.")
            if i % 2:
                question, targets = ("How often should a child aged 12 to 17 take a dose?",
                                     [f"every {child_h} hours", f"{child_h} hours", f"once every {child_h} hours"])
            else:
                question, targets = (f"How many {many} should a child aged 12 to 17 take at a time?",
                                     [f"{child} {child_unit}", f"{NUM_WORDS[child]} {child_unit}", str(child),
                                      NUM_WORDS[child]])
            diff = "hard"
        assert targets[0] in leaflet, (leaflet, targets[0])
        items.append({"id": f"hlt-leaf-{i + 1:03d}", "passage": leaflet, "question": question, "targets": targets,
                      "difficulty": diff})
    return items


PLACES = ["Harrowgate", "Elmsworth", "Calvoria", "Drummond Vale", "Westerby", "Kilnsea", "Ashcombe", "Brackley Fen",
          "Torrin Isles", "Lowmoor", "Redcastle", "Fairhaven", "Glenmore", "Pinecrest", "Saltmarsh"]
UNITS = [("tonnes of CO2 equivalent", ["tonnes of CO2 equivalent", "tCO2e", "tonnes CO2e", "tonnes of CO2e"]),
         ("megawatt hours", ["megawatt hours", "MWh", "megawatt-hours"]),
         ("millimetres", ["millimetres", "mm", "millimeters"]),
         ("cubic metres", ["cubic metres", "m3", "cubic meters"]),
         ("hectares", ["hectares", "ha"])]


def climate(rng: random.Random) -> list[dict]:
    """Report-style sentences; a value, a year or a unit."""
    items = []
    for i in range(125):
        place = PLACES[i % len(PLACES)]
        kind = i % 5
        year = rng.randrange(2018, 2025)
        if kind == 0:  # easy: one value
            t = round(rng.uniform(0.6, 2.4), 2)
            passage = (f"The {place} Climate Office reports that the mean temperature in {year} was {t} °C above "
                       f"the 1961-1990 average.")
            question = (f"By how many degrees Celsius was {pos(place)} {year} mean temperature above the "
                        f"1961-1990 average?")
            targets, diff = [f"{t}"], "easy"
        elif kind == 1:  # easy: target year
            goal = rng.randrange(2030, 2061, 5)
            cut = rng.randrange(30, 80)
            passage = (f"In {year}, {place} Council committed to cutting its emissions by {cut}% by {goal - 10} and to "
                       f"reach net zero by {goal}.")
            question = f"By what year does {place} Council aim to reach net zero?"
            targets, diff = [f"{goal}"], "easy"
        elif kind == 2:  # medium: unit
            unit, unit_targets = UNITS[(i // 5) % len(UNITS)]
            v = rng.randrange(1200, 98000)
            passage = (f"In {year}, the {place} water and energy board recorded {v:,} {unit}, the figure used in "
                       f"its annual climate report.")
            question = f"In what unit is the {place} board's {year} figure given?"
            targets, diff = unit_targets, "medium"
        elif kind == 3:  # medium: two values, ask the earlier one
            a = rng.randrange(40, 400) * 100
            b = int(a * rng.uniform(0.55, 0.95)) // 10 * 10
            passage = (f"{pos(place)} transport emissions fell from {a:,} tonnes of CO2 equivalent in {year - 5} to "
                       f"{b:,} tonnes in {year}.")
            question = f"What were {pos(place)} transport emissions in {year - 5}, in tonnes of CO2 equivalent?"
            targets, diff = [f"{a:,}"], "medium"
        else:  # hard: percentage among several figures, or the baseline year
            share = rng.randrange(12, 68)
            solar = rng.randrange(2, share)
            base = rng.choice([1990, 2005, 2010, 2015])
            passage = (f"Renewables supplied {share}% of {pos(place)} electricity in {year}, of which solar made up "
                       f"{solar} percentage points; the region's targets are set against a {base} baseline.")
            if i % 2:
                question = f"What share of {pos(place)} electricity came from renewables in {year}?"
                targets = [f"{share}%"]
            else:
                question, targets = f"Against which baseline year are {pos(place)} targets set?", [f"{base}"]
            diff = "hard"
        assert targets[0] in passage, (passage, targets[0])
        items.append({"id": f"clm-val-{i + 1:03d}", "passage": passage, "question": question, "targets": targets,
                      "difficulty": diff})
    return items


def write(path: Path, items: list[dict], seed: int) -> None:
    """The items as JSONL, about 20 % of them (seeded) split: train; no passage and question twice."""
    rng = random.Random(seed)
    train = set(rng.sample(range(len(items)), len(items) // 5))  # about 20 % train
    seen = set()
    with path.open("w") as fh:
        for k, it in enumerate(items):
            key = (it["passage"], it["question"])
            assert key not in seen, key
            seen.add(key)
            row = {"id": it["id"], "passage": it["passage"], "question": it["question"]}
            row.update({k2: it[k2] for k2 in ("target", "targets") if k2 in it})
            row.update(split="train" if k in train else "test", difficulty=it["difficulty"])
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    write(ROOT / "domains/finance/figures.jsonl", finance(random.Random(11)), 1)
    write(ROOT / "domains/health/leaflet_answers.jsonl", health(random.Random(12)), 2)
    write(ROOT / "domains/climate/report_values.jsonl", climate(random.Random(13)), 3)
