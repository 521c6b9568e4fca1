"""Seeded generator of multi-step math word problems with worked solutions.

Each problem comes from one of the templates in `TEMPLATES` (shopping, discounts
and tax, work rates, average speed, ages, linear equations, fractions of a
quantity, unit prices, ratios, percentage change, recipes, test averages,
consecutive integers, savings). The solution has 3 to 8 steps, one paragraph
each, and ends with the line `The answer is $\\boxed{<answer>}$.`. All arithmetic
uses `fractions.Fraction`, so answers are exact: an integer or a reduced fraction
written `\\frac{a}{b}` (with a leading `-` when negative). Every equation inside
`$...$` in a solution is true, and money amounts in prose are written `\\$12`, as
in MATH.

Record `index` of a release with seed `seed` is drawn from
`random.Random(derive_seed("stephint", seed, "synthetic_math", index))`, so a
record does not depend on how the release is split into shards.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from fractions import Fraction

from corpusforge.generators.seeding import derive_seed

NAMES = (
    "Amara", "Bruno", "Chen", "Dalia", "Elif", "Farid", "Greta", "Hiro", "Ines", "Jonas",
    "Kemal", "Lena", "Mateo", "Nadia", "Oskar", "Priya", "Quinn", "Rosa", "Sami", "Tove",
)  # fmt: skip

# Maximum draws when a template looks for values that give a whole-number answer.
MAX_DRAWS = 50


def tex(value: Fraction | int) -> str:
    """Write an exact number as LaTeX: `12`, `\\frac{3}{4}` or `-\\frac{3}{4}`."""
    value = Fraction(value)
    if value.denominator == 1:
        return str(value.numerator)
    sign = "-" if value < 0 else ""
    return f"{sign}\\frac{{{abs(value.numerator)}}}{{{value.denominator}}}"


def _factor(value: Fraction | int) -> str:
    """Write a number as a factor, in parentheses when it is negative."""
    text = tex(value)
    return f"({text})" if Fraction(value) < 0 else text


def _pick_names(rng: random.Random, count: int) -> list[str]:
    return rng.sample(NAMES, count)


Solution = tuple[str, list[str], Fraction]


def _shopping_change(rng: random.Random) -> Solution:
    name = _pick_names(rng, 1)[0]
    first_item, second_item = rng.sample(
        ["notebooks", "pens", "mugs", "candles", "plant pots", "posters", "puzzles"], 2
    )
    first_count, first_price = rng.randint(2, 9), rng.randint(2, 15)
    second_count, second_price = rng.randint(2, 9), rng.randint(2, 15)
    first_cost = first_count * first_price
    second_cost = second_count * second_price
    total = first_cost + second_cost
    bill = next(bill for bill in (50, 100, 200, 500) if bill > total)
    change = bill - total

    problem = (
        f"{name} buys {first_count} {first_item} at \\${first_price} each and "
        f"{second_count} {second_item} at \\${second_price} each, and pays with a "
        f"\\${bill} bill. How much change, in dollars, does {name} get back?"
    )
    steps = [
        f"First find the cost of the {first_item}. {name} buys {first_count} of them at "
        f"\\${first_price} each, so they cost ${first_count} \\times {first_price} = "
        f"{first_cost}$ dollars.",
        f"Next, the {second_item} cost ${second_count} \\times {second_price} = "
        f"{second_cost}$ dollars.",
        f"The whole purchase costs ${first_cost} + {second_cost} = {total}$ dollars.",
        f"{name} pays with \\${bill}, so the change is ${bill} - {total} = {change}$ dollars.",
    ]
    return problem, steps, Fraction(change)


def _discount_and_tax(rng: random.Random) -> Solution:
    item = rng.choice(["jacket", "bicycle", "lamp", "desk chair", "tent", "guitar"])
    for _ in range(MAX_DRAWS):
        price = 20 * rng.randint(2, 40)
        discount_percent = rng.choice([10, 15, 20, 25, 30, 40, 50])
        tax_percent = rng.choice([5, 8, 10, 12, 20])
        discount = Fraction(price * discount_percent, 100)
        sale_price = price - discount
        tax = sale_price * Fraction(tax_percent, 100)
        if tax.denominator == 1:
            break
    final_price = sale_price + tax

    problem = (
        f"A {item} costs \\${price}. The store takes {discount_percent}\\% off, and then "
        f"a sales tax of {tax_percent}\\% is added to the reduced price. What is the final "
        "price in dollars?"
    )
    steps = [
        f"The discount is {discount_percent}\\% of \\${price}, which is "
        f"${price} \\times \\frac{{{discount_percent}}}{{100}} = {tex(discount)}$ dollars.",
        f"After the discount the {item} costs ${price} - {tex(discount)} = "
        f"{tex(sale_price)}$ dollars.",
        f"The tax is {tax_percent}\\% of the reduced price: ${tex(sale_price)} \\times "
        f"\\frac{{{tax_percent}}}{{100}} = {tex(tax)}$ dollars.",
        f"Adding the tax gives the final price, ${tex(sale_price)} + {tex(tax)} = "
        f"{tex(final_price)}$ dollars.",
    ]
    return problem, steps, final_price


def _work_rate(rng: random.Random) -> Solution:
    first, second = _pick_names(rng, 2)
    first_hours = rng.randint(2, 12)
    second_hours = rng.choice([hours for hours in range(2, 16) if hours != first_hours])
    task = rng.choice(["paint a fence", "weed a garden", "sort a delivery", "clean a hall"])
    first_rate = Fraction(1, first_hours)
    second_rate = Fraction(1, second_hours)
    combined = first_rate + second_rate
    time = 1 / combined

    problem = (
        f"Working alone, {first} can {task} in {first_hours} hours, and {second} can do "
        f"the same job in {second_hours} hours. How many hours does it take them to "
        "finish the job working together?"
    )
    steps = [
        f"In one hour {first} does $\\frac{{1}}{{{first_hours}}}$ of the job.",
        f"In one hour {second} does $\\frac{{1}}{{{second_hours}}}$ of the job.",
        f"Working together they do $\\frac{{1}}{{{first_hours}}} + "
        f"\\frac{{1}}{{{second_hours}}} = {tex(combined)}$ of the job per hour.",
        f"The whole job therefore takes $1 \\div {tex(combined)} = {tex(time)}$ hours.",
    ]
    return problem, steps, time


def _average_speed(rng: random.Random) -> Solution:
    name = _pick_names(rng, 1)[0]
    first_speed, second_speed = rng.sample([30, 40, 45, 50, 60, 72, 80, 90], 2)
    first_distance = first_speed * rng.randint(1, 4)
    second_distance = rng.choice([second_speed * rng.randint(1, 3), 10 * rng.randint(3, 20)])
    first_time = Fraction(first_distance, first_speed)
    second_time = Fraction(second_distance, second_speed)
    total_distance = first_distance + second_distance
    total_time = first_time + second_time
    average = total_distance / total_time

    problem = (
        f"{name} drives {first_distance} km at {first_speed} km/h and then "
        f"{second_distance} km at {second_speed} km/h. What is the average speed of the "
        "whole trip, in km/h?"
    )
    steps = [
        f"The first part takes ${first_distance} \\div {first_speed} = {tex(first_time)}$ hours.",
        f"The second part takes ${second_distance} \\div {second_speed} = "
        f"{tex(second_time)}$ hours.",
        f"The total distance is ${first_distance} + {second_distance} = {total_distance}$ km.",
        f"The total time is ${tex(first_time)} + {tex(second_time)} = {tex(total_time)}$ hours.",
        "Average speed is total distance divided by total time, so it is "
        f"${total_distance} \\div {_factor(total_time)} = {tex(average)}$ km/h.",
    ]
    return problem, steps, average


def _ages(rng: random.Random) -> Solution:
    older, younger = _pick_names(rng, 2)
    multiple = rng.randint(2, 5)
    younger_age = rng.randint(3, 15)
    older_age = multiple * younger_age
    years = rng.randint(2, 12)
    future_sum = older_age + younger_age + 2 * years

    problem = (
        f"{older} is {multiple} times as old as {younger}. In {years} years the sum of "
        f"their ages will be {future_sum}. How old is {older} now?"
    )
    steps = [
        f"Let $y$ be {younger}'s age now. Then {older} is ${multiple}y$ years old.",
        f"In {years} years their ages will be $y + {years}$ and ${multiple}y + {years}$, "
        f"so $(y + {years}) + ({multiple}y + {years}) = {future_sum}$.",
        f"Collecting terms gives ${multiple + 1}y + {2 * years} = {future_sum}$, so "
        f"${multiple + 1}y = {future_sum} - {2 * years} = {future_sum - 2 * years}$.",
        f"Dividing by {multiple + 1} gives $y = {future_sum - 2 * years} \\div {multiple + 1} "
        f"= {younger_age}$, so {younger} is {younger_age}.",
        f"{older} is ${multiple} \\times {younger_age} = {older_age}$ years old.",
        f"Check: in {years} years the ages are ${younger_age} + {years} = "
        f"{younger_age + years}$ and ${older_age} + {years} = {older_age + years}$, and "
        f"${younger_age + years} + {older_age + years} = {future_sum}$.",
    ]
    return problem, steps, Fraction(older_age)


def _linear_equation(rng: random.Random) -> Solution:
    left_coefficient = rng.randint(2, 12)
    right_coefficient = rng.choice([c for c in range(-6, 12) if c not in (0, left_coefficient)])
    left_constant = rng.randint(-20, 20)
    right_constant = rng.randint(-20, 40)
    difference = left_coefficient - right_coefficient
    moved = right_constant - left_constant
    solution = Fraction(moved, difference)

    left = _linear_text(left_coefficient, left_constant)
    right = _linear_text(right_coefficient, right_constant)
    problem = f"Solve for $x$: ${left} = {right}$."

    if right_coefficient > 0:
        collect = f"Subtract ${_linear_text(right_coefficient, 0)}$ from both sides"
    else:
        collect = f"Add ${_linear_text(-right_coefficient, 0)}$ to both sides"
    steps = [
        f"{collect} to collect the $x$ terms on the left: "
        f"${_linear_text(difference, left_constant)} = {right_constant}$.",
    ]
    if left_constant > 0:
        steps.append(
            f"Subtract ${left_constant}$ from both sides: ${_linear_text(difference, 0)} = "
            f"{right_constant} - {left_constant} = {moved}$."
        )
    elif left_constant < 0:
        steps.append(
            f"Add ${-left_constant}$ to both sides: ${_linear_text(difference, 0)} = "
            f"{right_constant} + {-left_constant} = {moved}$."
        )
    steps += [
        f"Divide both sides by ${difference}$: $x = {moved} \\div {_factor(difference)} = "
        f"{tex(solution)}$.",
        f"Check: ${left_coefficient} \\times {_factor(solution)} + {_factor(left_constant)} "
        f"= {tex(left_coefficient * solution + left_constant)}$ and "
        f"${right_coefficient} \\times {_factor(solution)} + {_factor(right_constant)} = "
        f"{tex(right_coefficient * solution + right_constant)}$, so both sides agree.",
    ]
    return problem, steps, solution


def _linear_text(coefficient: int, constant: int) -> str:
    """Write `coefficient * x + constant` as LaTeX, such as `3x - 5`, `x` or `-x + 2`."""
    if coefficient == 1:
        text = "x"
    elif coefficient == -1:
        text = "-x"
    else:
        text = f"{coefficient}x"
    if constant > 0:
        text += f" + {constant}"
    elif constant < 0:
        text += f" - {-constant}"
    return text


def _fraction_of_remainder(rng: random.Random) -> Solution:
    name = _pick_names(rng, 1)[0]
    first_part = Fraction(rng.randint(1, 3), rng.randint(4, 6))
    second_part = Fraction(rng.randint(1, 2), rng.randint(3, 5))
    volume = 60 * rng.randint(1, 8)
    first_use = volume * first_part
    after_first = volume - first_use
    second_use = after_first * second_part
    remaining = after_first - second_use

    problem = (
        f"A water tank holds {volume} liters. On Monday {name} uses ${tex(first_part)}$ of "
        f"the water, and on Tuesday {name} uses ${tex(second_part)}$ of what is left. How "
        "many liters remain in the tank?"
    )
    steps = [
        f"On Monday {name} uses ${volume} \\times {tex(first_part)} = {tex(first_use)}$ liters.",
        f"That leaves ${volume} - {tex(first_use)} = {tex(after_first)}$ liters.",
        f"On Tuesday {name} uses ${tex(after_first)} \\times {tex(second_part)} = "
        f"{tex(second_use)}$ liters.",
        f"So ${tex(after_first)} - {tex(second_use)} = {tex(remaining)}$ liters remain.",
    ]
    return problem, steps, remaining


def _unit_price(rng: random.Random) -> Solution:
    product = rng.choice(["batteries", "yogurt cups", "tennis balls", "granola bars"])
    small_count, large_count = rng.choice([(4, 10), (6, 15), (3, 8), (5, 12), (6, 20)])
    small_price = rng.randint(3, 9)
    large_price = rng.randint(small_price + 1, small_price * large_count // small_count + 4)
    while Fraction(small_price, small_count) == Fraction(large_price, large_count):
        large_price += 1
    needed = small_count * large_count * rng.randint(1, 2)
    small_unit = Fraction(small_price, small_count)
    large_unit = Fraction(large_price, large_count)
    difference = abs(small_unit - large_unit)
    saving = difference * needed
    cheaper = "large" if large_unit < small_unit else "small"

    problem = (
        f"A small pack of {small_count} {product} costs \\${small_price} and a large pack "
        f"of {large_count} costs \\${large_price}. How many dollars does a shop save on "
        f"{needed} {product} by buying them at the cheaper price per item instead of the "
        "more expensive one?"
    )
    steps = [
        f"In the small pack one item costs ${small_price} \\div {small_count} = "
        f"{tex(small_unit)}$ dollars.",
        f"In the large pack one item costs ${large_price} \\div {large_count} = "
        f"{tex(large_unit)}$ dollars.",
        f"The {cheaper} pack is cheaper per item, by "
        f"${tex(max(small_unit, large_unit))} - {tex(min(small_unit, large_unit))} = "
        f"{tex(difference)}$ dollars.",
        f"For {needed} items the saving is ${needed} \\times {tex(difference)} = "
        f"{tex(saving)}$ dollars.",
    ]
    return problem, steps, saving


def _ratio_share(rng: random.Random) -> Solution:
    people = _pick_names(rng, 3)
    ratio = [rng.randint(1, 7) for _ in people]
    parts = sum(ratio)
    total = parts * rng.randint(5, 40) if rng.random() < 0.8 else rng.randint(50, 600)
    unit = Fraction(total, parts)
    largest = max(ratio)
    owner = people[ratio.index(largest)]
    share = unit * largest

    problem = (
        f"{people[0]}, {people[1]} and {people[2]} share \\${total} in the ratio "
        f"{ratio[0]}:{ratio[1]}:{ratio[2]}. How many dollars does the person with the "
        "largest share receive?"
    )
    steps = [
        f"The ratio has ${ratio[0]} + {ratio[1]} + {ratio[2]} = {parts}$ parts in total.",
        f"One part is worth ${total} \\div {parts} = {tex(unit)}$ dollars.",
        f"The largest share is {owner}'s, with {largest} parts, which is "
        f"${largest} \\times {tex(unit)} = {tex(share)}$ dollars.",
    ]
    return problem, steps, share


def _percent_change(rng: random.Random) -> Solution:
    town = rng.choice(["Ashford", "Brindle", "Corvale", "Dunmore", "Elmstead"])
    for _ in range(MAX_DRAWS):
        population = 100 * rng.randint(20, 300)
        growth_percent = rng.choice([5, 10, 12, 15, 20, 25])
        decline_percent = rng.choice([4, 5, 8, 10, 20])
        growth = population * Fraction(growth_percent, 100)
        after_growth = population + growth
        decline = after_growth * Fraction(decline_percent, 100)
        if decline.denominator == 1:
            break
    final = after_growth - decline

    problem = (
        f"The population of {town} is {population}. It grows by {growth_percent}\\% in the "
        f"first year and then falls by {decline_percent}\\% in the second year. What is the "
        "population after the two years?"
    )
    steps = [
        f"The growth in the first year is ${population} \\times "
        f"\\frac{{{growth_percent}}}{{100}} = {tex(growth)}$ people.",
        f"After one year the population is ${population} + {tex(growth)} = {tex(after_growth)}$.",
        f"The fall in the second year is ${tex(after_growth)} \\times "
        f"\\frac{{{decline_percent}}}{{100}} = {tex(decline)}$ people.",
        f"After two years the population is ${tex(after_growth)} - {tex(decline)} = {tex(final)}$.",
    ]
    return problem, steps, final


def _recipe_scaling(rng: random.Random) -> Solution:
    name = _pick_names(rng, 1)[0]
    flour = Fraction(rng.randint(1, 7), rng.choice([2, 3, 4]))
    batch = rng.choice([12, 16, 18, 20, 24])
    muffin_count = rng.choice([n for n in range(6, 61, 2) if n != batch])
    per_item = flour / batch
    needed = per_item * muffin_count
    batches = Fraction(muffin_count, batch)

    problem = (
        f"A recipe uses ${tex(flour)}$ cups of flour for {batch} muffins. How many cups of "
        f"flour does {name} need for {muffin_count} muffins?"
    )
    steps = [
        f"Each muffin needs ${tex(flour)} \\div {batch} = {tex(per_item)}$ cups of flour.",
        f"For {muffin_count} muffins {name} needs ${muffin_count} \\times {tex(per_item)} = "
        f"{tex(needed)}$ cups.",
        f"As a check, ${tex(needed)} \\div {tex(flour)} = {tex(needed / flour)}$, which is "
        f"the same as ${muffin_count} \\div {batch} = {tex(batches)}$ batches.",
    ]
    return problem, steps, needed


def _test_average(rng: random.Random) -> Solution:
    name = _pick_names(rng, 1)[0]
    count = rng.randint(3, 5)
    for _ in range(MAX_DRAWS):
        scores = [rng.randint(60, 98) for _ in range(count)]
        target = rng.randint(70, 92)
        needed = target * (count + 1) - sum(scores)
        if 40 <= needed <= 100:
            break
    current = sum(scores)
    required = target * (count + 1)
    score_list = ", ".join(str(score) for score in scores)

    problem = (
        f"{name} scored {score_list} on the first {count} tests of a course. What score "
        f"does {name} need on the next test so that the average of all {count + 1} tests is "
        f"exactly {target}?"
    )
    steps = [
        f"The points so far add up to ${' + '.join(str(score) for score in scores)} = {current}$.",
        f"An average of {target} over {count + 1} tests needs ${target} \\times {count + 1} "
        f"= {required}$ points in total.",
        f"So the next test must add ${required} - {current} = {needed}$ points.",
    ]
    return problem, steps, Fraction(needed)


def _consecutive_integers(rng: random.Random) -> Solution:
    how_many = rng.choice([3, 4, 5])
    first = rng.randint(-30, 120)
    numbers = [first + offset for offset in range(how_many)]
    total = sum(numbers)
    offsets_sum = how_many * (how_many - 1) // 2
    terms = " + ".join(["n"] + [f"(n + {offset})" for offset in range(1, how_many)])

    problem = f"The sum of {how_many} consecutive integers is {total}. What is the largest of them?"
    steps = [
        f"Call the smallest integer $n$. The {how_many} integers are "
        + ", ".join(["$n$"] + [f"$n + {offset}$" for offset in range(1, how_many)])
        + ".",
        f"Their sum is ${terms} = {how_many}n + {offsets_sum}$, and this must equal ${total}$.",
        f"So ${how_many}n = {total} - {offsets_sum} = {total - offsets_sum}$, which gives "
        f"$n = {total - offsets_sum} \\div {how_many} = {first}$.",
        f"The largest integer is $n + {how_many - 1}$, that is "
        f"${_factor(first)} + {how_many - 1} = {numbers[-1]}$.",
    ]
    return problem, steps, Fraction(numbers[-1])


def _savings_weeks(rng: random.Random) -> Solution:
    name = _pick_names(rng, 1)[0]
    goal_item = rng.choice(["a telescope", "a scooter", "a drum kit", "a camera"])
    price = 10 * rng.randint(15, 90)
    saved = 5 * rng.randint(0, 20)
    weekly = rng.choice([8, 12, 15, 18, 25, 30, 35])
    missing = price - saved
    exact_weeks = Fraction(missing, weekly)
    weeks = -(-missing // weekly)

    problem = (
        f"{name} wants {goal_item} that costs \\${price} and has already saved \\${saved}. "
        f"If {name} saves \\${weekly} every week, after how many weeks will {name} have "
        "enough money for the first time?"
    )
    steps = [
        f"{name} still needs ${price} - {saved} = {missing}$ dollars.",
        f"At \\${weekly} a week this takes ${missing} \\div {weekly} = {tex(exact_weeks)}$ weeks.",
    ]
    if exact_weeks.denominator == 1:
        steps.append(f"That is a whole number, so {name} has enough after exactly {weeks} weeks.")
    else:
        steps.append(
            f"That is not a whole number of weeks, so {name} needs the next whole week: after "
            f"{weeks - 1} weeks there is ${saved} + {weekly} \\times {weeks - 1} = "
            f"{saved + weekly * (weeks - 1)}$ dollars, which is less than \\${price}, and "
            f"after {weeks} weeks there is ${saved} + {weekly} \\times {weeks} = "
            f"{saved + weekly * weeks}$ dollars, which is enough."
        )
    return problem, steps, Fraction(weeks)


TEMPLATES: dict[str, Callable[[random.Random], Solution]] = {
    "shopping": _shopping_change,
    "discount_tax": _discount_and_tax,
    "work_rate": _work_rate,
    "average_speed": _average_speed,
    "ages": _ages,
    "linear_equation": _linear_equation,
    "fraction_of_remainder": _fraction_of_remainder,
    "unit_price": _unit_price,
    "ratio_share": _ratio_share,
    "percent_change": _percent_change,
    "recipe_scaling": _recipe_scaling,
    "test_average": _test_average,
    "consecutive_integers": _consecutive_integers,
    "savings_weeks": _savings_weeks,
}


def generate_problem(rng: random.Random, index: int) -> dict[str, str]:
    """Draw one problem from `rng` and return it as a MATH-style record.

    The record has `problem`, `solution` (steps separated by blank lines, then the
    answer line), `answer` (LaTeX), `subject` (the template name) and `unique_id`
    (`synthetic/<template>/<index>`).
    """
    template = rng.choice(sorted(TEMPLATES))
    problem, steps, answer = TEMPLATES[template](rng)
    answer_tex = tex(answer)
    solution = "\n\n".join([*steps, f"The answer is $\\boxed{{{answer_tex}}}$."])
    return {
        "problem": problem,
        "solution": solution,
        "answer": answer_tex,
        "subject": template,
        "unique_id": f"synthetic/{template}/{index}",
    }


def problem_rng(seed: int, index: int) -> random.Random:
    """Return the random stream of record `index` in a release with `seed`."""
    return random.Random(derive_seed("stephint", seed, "synthetic_math", index))


def iter_synthetic_problems(
    seed: int, count: int, start: int = 0
) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (index, record) for indices start .. count - 1."""
    for index in range(start, count):
        yield index, generate_problem(problem_rng(seed, index), index)
