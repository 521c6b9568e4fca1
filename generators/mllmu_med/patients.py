"""Synthetic patient profiles, institutions and decoy identities, drawn once per release.

Identities are drawn at plan time for the whole release, because identities
drawn shard by shard collide. Every value comes from a Faker instance (en_US
locale; Faker is pinned in pyproject.toml because its output changes between
releases) or a `random.Random`, both seeded per stream from (dataset, seed,
stream name). Dates come from the release's reference date, never from the clock.

Private values are the ones unique to a patient: name, date of birth, address,
phone with extension, email, medical record number and insurance id. They are
unique across patients, decoys and physicians: a value that collides is drawn
again, and `collisions` on a profile lists the fields that had to be redrawn.
Hospital, physician, sex and diagnosis are shared attributes.

Values stay obviously fictional: phone numbers use the 555-0100 to 555-0199 lines
that North American numbering reserves for fiction, with a unique extension;
emails use the reserved example.org and example.com domains; record numbers
come from a seeded counter with the prefix `MRN_PREFIX`.
"""

from __future__ import annotations

import datetime as dt
import random
import re
import unicodedata
from dataclasses import asdict, dataclass, field
from typing import Any

from corpusforge.generators.errors import ConfigError
from corpusforge.generators.seeding import derive_seed, stable_id

PRIVATE_FIELDS = (
    "name",
    "date_of_birth",
    "address",
    "phone",
    "email",
    "medical_record_number",
    "insurance_id",
)
MRN_PREFIX = "CFM-"
EMAIL_DOMAINS = ("example.org", "example.com")
# Area codes in service in North America; the 555-01xx lines are fictional in all of them.
AREA_CODES = ("212", "303", "312", "415", "503", "602", "617", "704", "713", "808", "919")
MIN_AGE = 18
MAX_AGE = 90
# Draws of one value before the name space counts as exhausted.
MAX_ATTEMPTS = 200
HOSPITAL_KINDS = (
    "Memorial Hospital",
    "General Hospital",
    "Medical Center",
    "Community Hospital",
    "University Hospital",
)
DIAGNOSES = {
    "chest": (
        "community-acquired pneumonia",
        "solitary pulmonary nodule under follow-up",
        "chronic obstructive pulmonary disease",
        "pleural effusion",
        "sarcoidosis",
    ),
    "head": (
        "migraine with aura",
        "ischemic stroke",
        "meningioma under follow-up",
        "multiple sclerosis",
        "chronic subdural hematoma",
    ),
    "abdomen": (
        "hepatic cyst",
        "renal calculus",
        "acute appendicitis",
        "pancreatitis",
        "incidental adrenal nodule",
    ),
}


@dataclass(frozen=True)
class Institution:
    """A hospital with its attending physicians: the top level of the hierarchy."""

    institution_id: str
    name: str
    physicians: tuple[str, ...]


@dataclass
class Patient:
    """One synthetic patient. The fields named in PRIVATE_FIELDS are unique in the release."""

    patient_id: str
    institution_id: str
    hospital: str
    physician: str
    sex: str
    first_name: str
    last_name: str
    name: str
    date_of_birth: str
    age: int
    address: str
    phone: str
    email: str
    medical_record_number: str
    insurance_id: str
    diagnosis: str
    collisions: list[str] = field(default_factory=list)

    def private_values(self) -> dict[str, str]:
        """Return the private values by field name, in PRIVATE_FIELDS order."""
        return {name: getattr(self, name) for name in PRIVATE_FIELDS}

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Patient:
        return cls(**data)


@dataclass(frozen=True)
class Identity:
    """A decoy: a full set of private values that belongs to no patient."""

    values: dict[str, str]


def _faker(dataset: str, seed: int, stream: str):
    # Faker takes about a second to import, so only planning imports it.
    from faker import Faker

    faker = Faker("en_US")
    faker.seed_instance(derive_seed(dataset, seed, "faker", stream))
    return faker


def _ascii_word(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z]", "", folded.lower())


def age_on(date_of_birth: dt.date, reference: dt.date) -> int:
    """Return the age in whole years on `reference`."""
    before_birthday = (reference.month, reference.day) < (date_of_birth.month, date_of_birth.day)
    return reference.year - date_of_birth.year - int(before_birthday)


def years_before(day: dt.date, years: int) -> dt.date:
    """Return the same calendar day `years` earlier; February 29 becomes February 28."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)


class IdentityRegistry:
    """Draws private values that are unique across every identity of a release.

    `taken` contains every value already given out, by field. A patient name
    also blocks the same physician name, so no private name appears as a shared
    attribute in another patient's record.
    """

    def __init__(self, faker: Any, rng: random.Random, reference_date: dt.date) -> None:
        self.faker = faker
        self.rng = rng
        self.reference_date = reference_date
        self.taken: dict[str, set[str]] = {name: set() for name in PRIVATE_FIELDS}
        self.taken_names: set[str] = set()
        self.mrn_counter = rng.randrange(1_000_000, 2_000_000)

    def _unique(self, field_name: str, draw, collisions: list[str]) -> str:
        for _ in range(MAX_ATTEMPTS):
            value = draw()
            if value not in self.taken[field_name]:
                self.taken[field_name].add(value)
                return value
            if field_name not in collisions:
                collisions.append(field_name)
        raise ConfigError(
            f"could not draw a unique {field_name} after {MAX_ATTEMPTS} attempts: "
            "the release asks for more identities than the generator can make distinct; "
            "use fewer patients"
        )

    def person_name(self, sex: str, collisions: list[str]) -> tuple[str, str, str]:
        """Draw (first, last, full) with a full name unused by any identity or physician."""
        first_name = self.faker.first_name_female if sex == "female" else self.faker.first_name_male
        for attempt in range(MAX_ATTEMPTS):
            first, last = first_name(), self.faker.last_name()
            if attempt >= MAX_ATTEMPTS // 2:
                # Plain names are running out: a middle initial opens more combinations.
                first = f"{first} {self.rng.choice('ABCDEFGHJKLMNPRSTW')}."
            full = f"{first} {last}"
            if full not in self.taken_names:
                self.taken_names.add(full)
                self.taken["name"].add(full)
                return first, last, full
            if "name" not in collisions:
                collisions.append("name")
        raise ConfigError(
            f"could not draw a unique name after {MAX_ATTEMPTS} attempts; use fewer patients"
        )

    def physician_name(self) -> str:
        for _ in range(MAX_ATTEMPTS):
            full = f"{self.faker.first_name()} {self.faker.last_name()}"
            if full not in self.taken_names:
                self.taken_names.add(full)
                return f"Dr. {full}"
        raise ConfigError(f"could not draw a unique physician name after {MAX_ATTEMPTS} attempts")

    def date_of_birth(self, collisions: list[str]) -> tuple[str, int]:
        """Draw a unique birth date from the reference date; return it with the age on that date."""
        ages: dict[str, int] = {}

        def draw() -> str:
            age = self.rng.randint(MIN_AGE, MAX_AGE)
            latest = years_before(self.reference_date, age)
            birth = latest - dt.timedelta(days=self.rng.randrange(0, 365))
            ages[birth.isoformat()] = age_on(birth, self.reference_date)
            return birth.isoformat()

        value = self._unique("date_of_birth", draw, collisions)
        return value, ages[value]

    def address(self, collisions: list[str]) -> str:
        def draw() -> str:
            street, city = self.faker.street_address(), self.faker.city()
            return f"{street}, {city}, {self.faker.state_abbr()} {self.faker.zipcode()}"

        return self._unique("address", draw, collisions)

    def phone(self, collisions: list[str]) -> str:
        def draw() -> str:
            area = self.rng.choice(AREA_CODES)
            line = self.rng.randrange(100, 200)
            extension = self.rng.randrange(1000, 10000)
            return f"{area}-555-{line:04d} ext. {extension}"

        return self._unique("phone", draw, collisions)

    def email(self, first: str, last: str, collisions: list[str]) -> str:
        def draw() -> str:
            local = f"{_ascii_word(first.split()[0]) or 'patient'}.{_ascii_word(last) or 'record'}"
            number = self.rng.randrange(10, 100)
            return f"{local}{number}@{self.rng.choice(EMAIL_DOMAINS)}"

        return self._unique("email", draw, collisions)

    def medical_record_number(self, collisions: list[str]) -> str:
        def draw() -> str:
            self.mrn_counter += self.rng.randint(1, 7)
            return f"{MRN_PREFIX}{self.mrn_counter:07d}"

        return self._unique("medical_record_number", draw, collisions)

    def insurance_id(self, collisions: list[str]) -> str:
        def draw() -> str:
            letters = "".join(self.rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(3))
            return f"{letters}{self.rng.randrange(10**8, 10**9)}"

        return self._unique("insurance_id", draw, collisions)


def draw_institutions(registry: IdentityRegistry, dataset: str, seed: int, count: int):
    """Draw `count` institutions with three attending physicians each."""
    institutions = []
    names: set[str] = set()
    for number in range(count):
        for _ in range(MAX_ATTEMPTS):
            kind = registry.rng.choice(HOSPITAL_KINDS)
            name = f"{registry.faker.last_name()} {kind}"
            if name not in names:
                names.add(name)
                break
        physicians = tuple(registry.physician_name() for _ in range(3))
        institution_id = f"inst-{stable_id(dataset, seed, 'institution', number, length=8)}"
        institutions.append(Institution(institution_id, name, physicians))
    return institutions


def draw_patients(
    dataset: str,
    seed: int,
    reference_date: str,
    regions: list[str],
    institutions_count: int | None = None,
    decoys: int = 0,
) -> tuple[list[Institution], list[Patient], list[Identity]]:
    """Draw one patient per entry of `regions` (the body region of the patient's images).

    Returns the institutions, the patients in draw order, and `decoys` decoy
    identities whose values belong to no patient. Patients are spread over the
    institutions at random. The same arguments give the same identities.
    """
    reference = dt.date.fromisoformat(reference_date)
    count = len(regions)
    institutions_count = institutions_count or max(2, min(20, count // 25 + 1))
    registry = IdentityRegistry(
        _faker(dataset, seed, "patients"),
        random.Random(derive_seed(dataset, seed, "identities")),
        reference,
    )
    institutions = draw_institutions(registry, dataset, seed, institutions_count)
    patients = []
    for number, region in enumerate(regions):
        collisions: list[str] = []
        sex = registry.rng.choice(("female", "male"))
        first, last, name = registry.person_name(sex, collisions)
        date_of_birth, age = registry.date_of_birth(collisions)
        institution = registry.rng.choice(institutions)
        diagnoses = DIAGNOSES.get(region, DIAGNOSES["chest"])
        patients.append(
            Patient(
                patient_id=f"pt-{stable_id(dataset, seed, 'patient', number, length=10)}",
                institution_id=institution.institution_id,
                hospital=institution.name,
                physician=registry.rng.choice(institution.physicians),
                sex=sex,
                first_name=first,
                last_name=last,
                name=name,
                date_of_birth=date_of_birth,
                age=age,
                address=registry.address(collisions),
                phone=registry.phone(collisions),
                email=registry.email(first, last, collisions),
                medical_record_number=registry.medical_record_number(collisions),
                insurance_id=registry.insurance_id(collisions),
                diagnosis=registry.rng.choice(diagnoses),
                collisions=collisions,
            )
        )

    # Decoys come from their own Faker stream but the same registry, so no
    # decoy value equals a patient's value.
    registry.faker = _faker(dataset, seed, "decoys")
    identities = []
    for _ in range(decoys):
        collisions = []
        sex = registry.rng.choice(("female", "male"))
        first, last, name = registry.person_name(sex, collisions)
        date_of_birth, _age = registry.date_of_birth(collisions)
        identities.append(
            Identity(
                {
                    "name": name,
                    "date_of_birth": date_of_birth,
                    "address": registry.address(collisions),
                    "phone": registry.phone(collisions),
                    "email": registry.email(first, last, collisions),
                    "medical_record_number": registry.medical_record_number(collisions),
                    "insurance_id": registry.insurance_id(collisions),
                }
            )
        )
    return institutions, patients, identities
