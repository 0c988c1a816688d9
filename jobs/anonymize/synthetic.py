"""A synthetic MenoTime database: the application's shape, filled with plausible fake PHI.

Everything is generated inside PostgreSQL by ``INSERT ... SELECT FROM generate_series`` with
deterministic expressions (``hashint8extended(row, seed)``), so the same seed gives the same
rows, and a million patients take seconds, not hours. Keys and indexes are added after loading.

Per patient: 2 appointments, 3 symptom logs, 2 messages, 1 prescription, 1 payment; one provider
per 500 patients (at least 10). Free text embeds emails, phone numbers, SSNs and dates, as real
notes do; payments copy the patient's processor customer id and messages the patient's email, so
tests can check that joins survive anonymization.
"""

from __future__ import annotations

from typing import Any

from jobs.anonymize import sql
from jobs.anonymize.names import CITIES, FIRST_NAMES, LAST_NAMES, STREET_KINDS, STREETS

PER_PATIENT = {"appointments": 2, "symptom_logs": 3, "messages": 2, "prescriptions": 1, "payments": 1}
TABLES = ("providers", "patients", "appointments", "symptom_logs", "messages", "prescriptions", "payments")

SCHEMA = """
CREATE TABLE providers (
    id bigint PRIMARY KEY, npi text NOT NULL UNIQUE, first_name text NOT NULL, last_name text NOT NULL,
    email text NOT NULL UNIQUE, specialty text NOT NULL, created_at timestamptz NOT NULL);
CREATE TABLE patients (
    id bigint NOT NULL, mrn text NOT NULL, first_name text NOT NULL, last_name text NOT NULL,
    dob date NOT NULL, email text NOT NULL, phone text, address_line text, city text, state text,
    postal_code text, processor_customer_id text, created_at timestamptz NOT NULL);
CREATE TABLE appointments (
    id bigint NOT NULL, patient_id bigint NOT NULL, provider_id bigint NOT NULL,
    starts_at timestamptz NOT NULL, duration_minutes int NOT NULL, reason text, status text NOT NULL);
CREATE TABLE symptom_logs (
    id bigint NOT NULL, patient_id bigint NOT NULL, logged_at timestamptz NOT NULL,
    hot_flashes int NOT NULL, sleep_quality int NOT NULL, mood int NOT NULL, notes text);
CREATE TABLE messages (
    id bigint NOT NULL, patient_id bigint NOT NULL, provider_id bigint NOT NULL, sender_email text NOT NULL,
    recipient_email text NOT NULL, body text NOT NULL, sent_at timestamptz NOT NULL);
CREATE TABLE prescriptions (
    id bigint NOT NULL, patient_id bigint NOT NULL, provider_id bigint NOT NULL, medication text NOT NULL,
    dosage text NOT NULL, prescribed_on date NOT NULL, refills int NOT NULL);
CREATE TABLE payments (
    id bigint NOT NULL, patient_id bigint NOT NULL, processor_customer_id text NOT NULL,
    amount_cents int NOT NULL, currency text NOT NULL, card_last4 text, paid_at timestamptz NOT NULL,
    status text NOT NULL);
"""

CONSTRAINTS = """
ALTER TABLE patients ADD PRIMARY KEY (id), ADD UNIQUE (mrn), ADD UNIQUE (email), ADD UNIQUE (processor_customer_id);
ALTER TABLE appointments ADD PRIMARY KEY (id),
    ADD FOREIGN KEY (patient_id) REFERENCES patients (id), ADD FOREIGN KEY (provider_id) REFERENCES providers (id);
ALTER TABLE symptom_logs ADD PRIMARY KEY (id), ADD FOREIGN KEY (patient_id) REFERENCES patients (id);
ALTER TABLE messages ADD PRIMARY KEY (id),
    ADD FOREIGN KEY (patient_id) REFERENCES patients (id), ADD FOREIGN KEY (provider_id) REFERENCES providers (id);
ALTER TABLE prescriptions ADD PRIMARY KEY (id),
    ADD FOREIGN KEY (patient_id) REFERENCES patients (id), ADD FOREIGN KEY (provider_id) REFERENCES providers (id);
ALTER TABLE payments ADD PRIMARY KEY (id), ADD FOREIGN KEY (patient_id) REFERENCES patients (id);
CREATE INDEX ON appointments (patient_id);
CREATE INDEX ON symptom_logs (patient_id);
CREATE INDEX ON messages (patient_id);
CREATE INDEX ON payments (patient_id);
"""


def _r(tag: int) -> str:
    """A deterministic non-negative pseudo-random bigint of the row ``g`` (tag picks a stream)."""
    return f"(hashint8extended(g * 64 + {tag}, %(seed)s) & 9223372036854775807)"


def _pick(array: str, tag: int) -> str:
    return f"({array})[1 + {_r(tag)} %% cardinality({array})]"


FIRST, LAST = "%(first_names)s::text[]", "%(last_names)s::text[]"
EPOCH = "timestamptz '2024-01-01 00:00:00+00'"

PROVIDERS = f"""
INSERT INTO providers
SELECT g, (1000000000 + (g::bigint * 7919 + %(seed)s) %% 999999999)::text, {_pick(FIRST, 2)}, {_pick(LAST, 3)},
       'dr.' || g || '@menotime-clinic.example.com',
       (ARRAY['Gynecology', 'Endocrinology', 'Primary care', 'Psychiatry', 'Nutrition'])[1 + {_r(4)} %% 5],
       {EPOCH} - make_interval(days => ({_r(5)} %% 1500)::int)
FROM generate_series(1, %(providers)s) g
"""

# Names come first in a sub-select so the email can be built from them.
PATIENTS = f"""
INSERT INTO patients
SELECT g, 'MRN' || lpad(((g::bigint * 7919 + %(seed)s) %% 100000000)::text, 8, '0'), f, l,
       date '1958-01-01' + ({_r(3)} %% 7300)::int,
       lower(f) || '.' || lower(l) || g || '@' || (ARRAY['gmail.com', 'yahoo.com', 'outlook.com',
            'icloud.com', 'proton.me'])[1 + {_r(4)} %% 5],
       CASE WHEN {_r(5)} %% 10 = 0 THEN NULL ELSE
            '(' || (201 + {_r(6)} %% 798) || ') ' || (201 + {_r(7)} %% 798) || '-' || lpad(({_r(8)} %% 10000)::text, 4, '0') END,
       (1 + {_r(9)} %% 9899) || ' ' || {_pick("%(streets)s::text[]", 10)} || ' ' || {_pick("%(street_kinds)s::text[]", 11)},
       (%(cities)s::text[])[1 + c], (%(states)s::text[])[1 + c], lpad((10000 + {_r(12)} %% 89999)::text, 5, '0'),
       'cus_' || substr(md5(%(seed)s || ':' || g), 1, 14),
       {EPOCH} + make_interval(days => ({_r(13)} %% 700)::int, secs => ({_r(14)} %% 86400)::int)
FROM (SELECT g, {_pick(FIRST, 1)} AS f, {_pick(LAST, 2)} AS l, ({_r(15)} %% %(n_cities)s)::int AS c
      FROM generate_series(1, %(patients)s) g) s
"""

NOTE_TEMPLATES = [
    "'Hot flashes ' || hf || 'x today, woke up at night.'",
    "'Started HRT on ' || to_char(d, 'MM/DD/YYYY') || '. Call me at ' || coalesce(p.phone, '415.555.0199') || ' if dose changes.'",
    "'Mood low, sleep poor. Please email ' || p.email || ' with results.'",
    "'DOB ' || to_char(p.dob, 'MM/DD/YYYY') || ', insurance asks for SSN ' || lpad((100 + g %% 800)::text, 3, '0') "
    "|| '-' || lpad((10 + g %% 89)::text, 2, '0') || '-' || lpad((1000 + g %% 8999)::text, 4, '0') || '.'",
    "'Night sweats since ' || to_char(d, 'Mon DD, YYYY') || '.'",
    "'Feeling better this week.'",
]

SYMPTOM_LOGS = f"""
INSERT INTO symptom_logs
SELECT g, p.id, ts, hf, 1 + ({_r(2)} %% 5)::int, 1 + ({_r(3)} %% 5)::int,
       CASE ({_r(4)} %% {len(NOTE_TEMPLATES)}) {" ".join(f"WHEN {i} THEN {t}" for i, t in enumerate(NOTE_TEMPLATES))} END
FROM (SELECT g, (g - 1) / 3 + 1 AS pid, ({_r(1)} %% 15)::int AS hf,
             {EPOCH} + make_interval(days => ({_r(5)} %% 700)::int, secs => ({_r(6)} %% 86400)::int) AS ts,
             date '2023-01-01' + ({_r(7)} %% 600)::int AS d
      FROM generate_series(1, %(patients)s * 3) g) s
JOIN patients p ON p.id = s.pid
"""

APPOINTMENTS = f"""
INSERT INTO appointments
SELECT g, (g - 1) / 2 + 1, 1 + {_r(1)} %% %(providers)s,
       {EPOCH} + make_interval(days => ({_r(2)} %% 700)::int, hours => (8 + {_r(3)} %% 9)::int),
       (ARRAY[15, 30, 45, 60])[1 + {_r(4)} %% 4],
       (ARRAY['Follow-up on HRT', 'Sleep problems', 'Annual visit', 'Reschedule: call 415-555-2671',
              'Labs review, born 04/12/1969'])[1 + {_r(5)} %% 5],
       (ARRAY['completed', 'completed', 'cancelled', 'scheduled'])[1 + {_r(6)} %% 4]
FROM generate_series(1, %(patients)s * 2) g
"""

MESSAGES = f"""
INSERT INTO messages
SELECT g, p.id, pr.id,
       CASE WHEN from_patient THEN p.email ELSE pr.email END, CASE WHEN from_patient THEN pr.email ELSE p.email END,
       CASE WHEN from_patient
            THEN 'Hi, this is ' || p.first_name || '. Can you call me at ' || coalesce(p.phone, '555 201 3344') || '?'
            ELSE 'Your results from ' || to_char(ts, 'YYYY-MM-DD') || ' are in; reply to ' || pr.email || '.' END,
       ts
FROM (SELECT g, (g - 1) / 2 + 1 AS pid, 1 + {_r(1)} %% %(providers)s AS prid, {_r(2)} %% 2 = 0 AS from_patient,
             {EPOCH} + make_interval(days => ({_r(3)} %% 700)::int, secs => ({_r(4)} %% 86400)::int) AS ts
      FROM generate_series(1, %(patients)s * 2) g) s
JOIN patients p ON p.id = s.pid JOIN providers pr ON pr.id = s.prid
"""

PRESCRIPTIONS = f"""
INSERT INTO prescriptions
SELECT g, g, 1 + {_r(1)} %% %(providers)s,
       (ARRAY['Estradiol', 'Progesterone', 'Paroxetine', 'Gabapentin', 'Fezolinetant'])[1 + {_r(2)} %% 5],
       (ARRAY['0.5 mg daily', '1 mg daily', '100 mg nightly', '7.5 mg daily', '45 mg daily'])[1 + {_r(3)} %% 5],
       date '2024-01-01' + ({_r(4)} %% 700)::int, ({_r(5)} %% 6)::int
FROM generate_series(1, %(patients)s) g
"""

PAYMENTS = f"""
INSERT INTO payments
SELECT g, p.id, p.processor_customer_id, (2500 + {_r(1)} %% 20000)::int, 'usd',
       lpad(({_r(2)} %% 10000)::text, 4, '0'),
       {EPOCH} + make_interval(days => ({_r(3)} %% 700)::int, secs => ({_r(4)} %% 86400)::int),
       (ARRAY['succeeded', 'succeeded', 'succeeded', 'refunded'])[1 + {_r(5)} %% 4]
FROM generate_series(1, %(patients)s) g JOIN patients p ON p.id = g
"""


def create_synthetic(*, dsn: str, patients: int, seed: int) -> dict[str, int]:
    """Create the MenoTime tables in the (empty) database at ``dsn`` and fill them; rows per table.
    Refuses (ValueError) if ``providers`` or ``patients`` already exists there."""
    if patients < 1:
        raise ValueError("patients must be at least 1")
    params: dict[str, Any] = {
        "seed": seed,
        "patients": patients,
        "providers": max(10, patients // 500),
        "first_names": list(FIRST_NAMES),
        "last_names": list(LAST_NAMES),
        "streets": list(STREETS),
        "street_kinds": list(STREET_KINDS),
        "cities": [c for c, _ in CITIES],
        "states": [s for _, s in CITIES],
        "n_cities": len(CITIES),
    }
    with sql.connect(dsn) as conn:
        exists = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = ANY(%s)",
            [list(TABLES)],
        ).fetchone()
        if exists and exists[0]:
            raise ValueError(
                f"database {sql.database_name(dsn)} already has MenoTime tables; use an empty one"
            )
        conn.execute("SET work_mem = '256MB'")
        with conn.transaction():
            conn.execute(SCHEMA)
            for statement in (
                PROVIDERS,
                PATIENTS,
                APPOINTMENTS,
                SYMPTOM_LOGS,
                MESSAGES,
                PRESCRIPTIONS,
                PAYMENTS,
            ):
                conn.execute(statement, params)
            conn.execute(CONSTRAINTS)
        for table in TABLES:
            conn.execute(f"ANALYZE {table}")
        return {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]
            for table in TABLES
        }
