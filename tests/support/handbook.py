"""A made-up staff handbook (so no base model can know it) and questions about facts past each page's opening,
worded unlike any question the offline rules write (seen_in_training checks a run's data for them): shared by
the knowledge recall bench and the end-to-end knowledge test."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tools.data.knowledge import embedded_question, factual_question, find_facts, split_sentences

# (page title, [(sentence, question, answer)]): the first fact of each page opens it and is never asked.
PAGES: list[tuple[str, list[tuple[str, str, str]]]] = [
    ("Harbor Street office", [
        ("The Harbor Street office was opened by Ilse Varga in 2011.", "", ""),
        ("The reception desk opens at 7:40 every weekday.", "At what time does the Harbor Street reception open?",
         "7:40"),
        ("Visitors park in the Gull garage on level 4.", "Which level of the Gull garage is for visitors?", "4"),
        ("The office kitchen is cleaned by the Pelham company.",
         "Which cleaning company looks after the office kitchen?", "Pelham"),
        ("Fire drills take place on the second Tuesday of March.", "In which month are the fire drills held?",
         "March"),
        ("The mail room is on floor 3.", "On what floor can I find the mail room?", "3"),
    ]),
    ("Travel policy", [
        ("The travel policy applies to every employee of Norvane.", "", ""),
        ("Train tickets above 180 euros need approval from Oskar Lind.",
         "Who approves train tickets that cost more than 180 euros?", "Oskar Lind"),
        ("Hotel nights are refunded up to 135 euros.", "What is the most refunded for a hotel night?", "135"),
        ("Receipts must be uploaded within 21 days.", "How many days do employees have to upload receipts?", "21"),
        ("Flights shorter than 4 hours are booked in economy.",
         "Below how many hours of flight is economy class used?", "4"),
        ("The travel desk is called Compass.", "What name does the travel desk go by?", "Compass"),
    ]),
    ("Build server", [
        ("The build server is named Heron.", "", ""),
        ("Heron runs the nightly tests at 02:10.", "When do the nightly tests run on Heron?", "02:10"),
        ("Access to Heron is granted by the Kestrel team.", "Who do I ask for access to the build server?",
         "Kestrel"),
        ("Build logs are kept for 45 days.", "How long are build logs retained, in days?", "45"),
        ("Heron has 96 CPU cores.", "What is the CPU core count of the build server?", "96"),
        ("Failed builds are reported in the channel called lantern.",
         "Where do reports of failed builds go?", "lantern"),
    ]),
    ("Leave", [
        ("Every employee gets 27 days of paid leave per year.", "", ""),
        ("Sick leave must be reported to Marta Ilves.", "To whom is sick leave reported?", "Marta Ilves"),
        ("Unused leave expires on 31 March.", "What is the expiry date for unused leave?", "31 March"),
        ("Parents receive 16 weeks of paid parental leave.", "How many weeks of parental leave are paid?", "16"),
        ("The leave request form is called PL-2.", "Which form do I fill in to request leave?", "PL-2"),
        ("Leave longer than 10 days needs two weeks of notice.",
         "Above how many days of leave are two weeks of notice needed?", "10"),
    ]),
    ("Security", [
        ("Security at Norvane is run by Dana Okafor.", "", ""),
        ("Passwords must be changed every 90 days.", "How often must passwords be changed, in days?", "90"),
        ("Badges are printed in room B12.", "Where can I get a badge printed?", "B12"),
        ("Lost badges are reported to the Falcon desk.", "Who should I tell if I lose my badge?", "Falcon"),
        ("Laptops lock after 5 minutes without use.", "After how many idle minutes do laptops lock?", "5"),
        ("Guest Wi-Fi codes change every Monday.", "On which day do the guest Wi-Fi codes change?", "Monday"),
    ]),
    ("Canteen", [
        ("The canteen is run by Tomas Brenner.", "", ""),
        ("Lunch is served from 11:45.", "What time does lunch service start?", "11:45"),
        ("A lunch costs 6 euros for staff.", "How much does a staff lunch cost, in euros?", "6"),
        ("The soup of the day is posted on the board called Ladle.", "What is the menu board called?", "Ladle"),
        ("The canteen closes at 14:30.", "Until what time is the canteen open?", "14:30"),
        ("Fruit is delivered by the Orchard farm.", "Who supplies the fruit?", "Orchard"),
    ]),
    ("Onboarding", [
        ("Onboarding at Norvane lasts two weeks.", "", ""),
        ("New staff meet their buddy on day 3.", "On which day do new staff meet their buddy?", "3"),
        ("The welcome session is led by Priya Nandakumar.", "Who runs the welcome session for new staff?",
         "Priya Nandakumar"),
        ("Laptops are handed out in room C4.", "Where do new staff pick up their laptops?", "C4"),
        ("The first review happens after 90 days.", "After how many days is the first review?", "90"),
        ("The onboarding checklist is called Seedling.",
         "What is the name of the checklist used during onboarding?", "Seedling"),
    ]),
    ("Meeting rooms", [
        ("Meeting rooms at Norvane are named after rivers.", "", ""),
        ("The largest room, Danube, seats 24 people.", "How many people does the Danube room seat?", "24"),
        ("Rooms are booked in the tool called Tidal.", "Which tool is used to book rooms?", "Tidal"),
        ("Bookings longer than 3 hours need a reason.", "Above how many hours does a booking need a reason?", "3"),
        ("The Rhine room has a video wall.", "Which meeting room is equipped with a video wall?", "Rhine"),
        ("Unused bookings are released after 15 minutes.",
         "How many minutes can a booked room sit unused before the booking is released?", "15"),
    ]),
]


def write_pages(folder: Path, pages: list[tuple[str, list[tuple[str, str, str]]]] | None = None) -> list[dict]:
    """The pages as Markdown files; the questions (user turn + fact) about every fact but each page's first."""
    folder.mkdir(parents=True, exist_ok=True)
    questions = []
    for index, (title, facts) in enumerate(PAGES if pages is None else pages):
        half = len(facts) // 2
        body = [f"# {title}", "", " ".join(s for s, _, _ in facts[:half]), "", "## Details", "",
                " ".join(s for s, _, _ in facts[half:]), ""]
        (folder / f"page-{index + 1}.md").write_text("\n".join(body))
        questions += [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}],
                       "fact": a, "page": title} for _, q, a in facts if q]
    return questions


def seen_in_training(questions: list[dict], home: Path) -> list[str]:
    """The questions a run under `home` trained or validated on word for word (after normalising case and
    punctuation): a question asked to measure recall must be one the model never saw, or it measures recitation."""
    from tools.grounding import question_of
    from tools.text import normalize_answer

    seen = {normalize_answer(question_of(m["content"]))
            for path in [*home.rglob("train*.jsonl"), *home.rglob("val.jsonl")]
            for line in path.read_text().splitlines() if line.strip()
            for m in json.loads(line).get("messages", []) if m.get("role") == "user"}
    return [q["messages"][0]["content"] for q in questions if normalize_answer(q["messages"][0]["content"]) in seen]


def handbook_teacher(messages: list[dict]) -> str:
    """A stand-in for a large teacher model on loopback: as many questions per fact of the passage it is sent as
    the prompt asks for, in wordings of its own (neither the offline rules' nor the bench's), answered with the
    passage's sentence."""
    prompt = messages[-1]["content"]
    title = re.search(r'Passage from "([^"]*)"', prompt)
    passage = re.search(r"<<<\n(.*)\n>>>", prompt, re.S)
    per_fact = re.search(r"ask about every fact it states (\d+) times", prompt)
    if not passage:
        return "I need a passage to write questions about."
    where = title.group(1) if title else "the handbook"
    wordings = ("In the {where} page, {asked}", "Quick question about {where}: {asked}",
                "Checking the {where} rules: {clause}?", "{where} FAQ: {asked}")
    pairs = []
    for sentence in split_sentences(passage.group(1)):
        for fact in find_facts(sentence):
            question = factual_question(fact, passage.group(1))
            asked, clause = question[0].lower() + question[1:], embedded_question(fact, passage.group(1))
            for n in range(int(per_fact.group(1)) if per_fact else 2):
                wording = wordings[n % len(wordings)].format(where=where, asked=asked, clause=clause)
                pairs.append({"kind": "factual" if n == 0 else "paraphrased", "question": wording,
                              "answer": sentence})
    return "```json\n" + json.dumps({"pairs": pairs}) + "\n```"
