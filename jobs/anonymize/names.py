"""Plausible names and places for fake PHI (the synthetic database) and for the fake_name strategy."""

from __future__ import annotations

FIRST_NAMES = (
    "Jordan", "Morgan", "Linda", "Patricia", "Barbara", "Susan", "Karen", "Nancy", "Lisa", "Donna", "Sandra",
    "Carol", "Sharon", "Michelle", "Laura", "Kimberly", "Deborah", "Jessica", "Cynthia", "Angela", "Melissa",
    "Brenda", "Amy", "Anna", "Rebecca", "Kathleen", "Pamela", "Martha", "Debra", "Amanda", "Stephanie",
    "Carolyn", "Christine", "Janet", "Catherine", "Maria", "Heather", "Diane", "Julie", "Joyce", "Victoria",
    "Kelly", "Christina", "Joan", "Evelyn", "Lauren", "Judith", "Olivia", "Teresa", "Cheryl", "Gloria",
    "Rachel", "Andrea", "Denise", "Tammy", "Irene", "Jane", "Lori", "Marilyn", "Kathryn", "Beverly", "Yolanda",
    "Aiko", "Priya", "Mei", "Fatima", "Ngozi", "Sofia", "Ines", "Leilani",
)
LAST_NAMES = (
    "Rivera", "Okafor", "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis",
    "Rodriguez", "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor",
    "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez",
    "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright", "Scott", "Torres", "Nguyen", "Hill",
    "Flores", "Green", "Adams", "Nelson", "Baker", "Hall", "Campbell", "Mitchell", "Carter", "Roberts",
    "Patel", "Kim", "Chen", "Tanaka", "Haddad", "Kowalski", "Novak", "Silva", "Costa",
)
STREETS = ("Oak", "Maple", "Cedar", "Pine", "Elm", "Washington", "Lake", "Hill", "Sunset", "Park", "Mission",
           "Valencia", "Harbor", "Ridge", "Willow", "Mesa")
STREET_KINDS = ("St", "Ave", "Blvd", "Rd", "Ln", "Way", "Ct", "Dr")
CITIES = (("Sacramento", "CA"), ("Fresno", "CA"), ("Oakland", "CA"), ("San Diego", "CA"), ("Portland", "OR"),
          ("Seattle", "WA"), ("Phoenix", "AZ"), ("Denver", "CO"), ("Austin", "TX"), ("Chicago", "IL"),
          ("Atlanta", "GA"), ("Boston", "MA"), ("Reno", "NV"), ("Boise", "ID"), ("Tucson", "AZ"), ("Salem", "OR"))
