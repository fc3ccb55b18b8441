"""The kind of answer a question asks for (who, when, how many, where) and whether a sentence
holds one: one definition for the sentence ranker (:mod:`qa.ranking`) and for abstention
(:mod:`qa.abstain`), English and German."""

from __future__ import annotations

import re

ASKS_WHO = re.compile(r"^\W*(who|whom|whose|wer|wem|wen|wessen)\b|\b(which|what|welche[rsmn]?)"
                      r" (person|man|woman|company|organi[sz]ation|group|team|minister|"
                      r"president|leader|person|firma|organisation|gruppe|politiker)", re.I)
ASKS_WHEN = re.compile(r"\b(when|what (year|date|day|time)|which (year|day|century)|wann|seit "
                       r"wann|in welchem jahr(hundert)?|an welchem tag|um wie viel uhr)\b", re.I)
ASKS_NUMBER = re.compile(r"\b(how (many|much|long|far|old|big|large|high)|what percentage|"
                         r"wie (viele?|hoch|lange?|weit|alt|groß)|wieviele?)\b", re.I)
ASKS_WHERE = re.compile(r"^\W*(where|wo|woher|wohin)\b|\b(in|at|from|aus|in) (which|what|"
                        r"welche[rsmn]?) (city|country|place|region|stadt|land|ort|region)\b",
                        re.I)
TIME = re.compile(
                        r"\b1[0-9]{3}\b|\b20[0-9]{2}\b|\b(januar|februar|märz|april|mai|juni|juli|august|september|"
                        r"oktober|november|dezember|january|february|march|may|june|july|october|december|montag|"
                        r"dienstag|mittwoch|donnerstag|freitag|samstag|sonntag|monday|tuesday|wednesday|thursday|"
                        r"friday|saturday|sunday|frühjahr|frühling|sommer|herbst|winter|spring|summer|autumn|"
                        r"jahrhundert|century|gestern|heute|morgen|yesterday|today|tomorrow|woche|monat|jahr|week|"
                        r"month|year|uhr|o'clock)\w*|\b\d{1,2}\.\s?\d{1,2}\.", re.I)
NUMBER = re.compile(
                        r"\d|\b(zwei|drei|vier|fünf|sechs|sieben|acht|neun|zehn|elf|zwölf|zwanzig|dreißig|"
                        r"hundert|tausend|dutzend|millionen?|milliarden?|hälfte|prozent|two|three|four|five|six|"
                        r"seven|eight|nine|ten|twelve|twenty|hundred|thousand|dozen|millions?|billions?|half|"
                        r"percent)\w*", re.I)
# A person or organisation: two capitalised words in a row not opening the sentence (German
# capitalises every noun, so one capitalised word says little), or an organisation suffix.
NAME_PAIR = re.compile(r"(?<=\S\s)[A-ZÄÖÜ][\w.-]+\s[A-ZÄÖÜ][\w-]+")
ORG = re.compile(r"\b\w+(GmbH|AG|Inc|Ltd|Verein|Partei|Party|Universität|University|"
                 r"Ministerium|Ministry)\b")
PLACE = re.compile(r"\b(in|im|nach|bei|aus|near|at|from|zu)\s+[A-ZÄÖÜ]\w+")


def answer_kinds(question: str) -> dict[str, bool]:
    """Which kind of answer the question asks for."""
    return {"who": bool(ASKS_WHO.search(question)), "when": bool(ASKS_WHEN.search(question)),
            "number": bool(ASKS_NUMBER.search(question)),
            "where": bool(ASKS_WHERE.search(question))}


def holds_time(text: str) -> bool:
    """The text names a date or time (a year, a month, a weekday, a season, a clock time)."""
    return bool(TIME.search(text))


def holds_number(text: str, question: str = "") -> bool:
    """The text holds a number other than those of the question (digits or number words)."""
    q_numbers = set(re.findall(r"\d+", question))
    return any(n not in q_numbers for n in re.findall(r"\d+", text)) or bool(
        NUMBER.search(re.sub(r"\d", "", text)))


def holds_person_or_organisation(text: str) -> bool:
    """Two capitalised words in a row not opening the sentence, or an organisation's name."""
    return bool(NAME_PAIR.search(text) or ORG.search(text))


def holds_place(text: str) -> bool:
    """A capitalised word after a preposition of place."""
    return bool(PLACE.search(text))
