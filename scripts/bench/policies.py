"""Benchmark policy evaluation in-process: 100 active rules of every condition kind against a
2,000-character message, with no I/O.

Three timings per run:
  evaluate  the rules already loaded and compiled (``RuleSet``), one subject evaluated;
  per-call  ``evaluate(rules, ...)`` building the rule set every time (the patterns' RE2 set
            compiled on each call), the cost when nothing is reused;
  load      parsing the 100 stored matcher documents and building the rule set, what an
            invocation paid before its first evaluation when nothing was reused;
  reuse     what the gate pays per request instead (``lambdas.policies.compiled``): the 100 rows
            as the policy query returns them, looked up in the compiled-rule cache by (tenant,
            rule id, version), and the cached rule set found for that collection of versions.

Example:
  uv run python scripts/bench/policies.py                 # 2000 evaluations, JSON report
  uv run python scripts/bench/policies.py --evaluations 500 --rules 200
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lambdas.policies.compiled import RuleCompiler  # noqa: E402
from lambdas.policies.evaluator import Default, Rule, RuleSet, evaluate  # noqa: E402
from lambdas.policies.matcher import Subject, parse_matcher  # noqa: E402

TARGET_P50_MS = 1.0
WORDS = [
    "cliente",
    "proposta",
    "contrato",
    "reunião",
    "prazo",
    "entrega",
    "valor",
    "desconto",
    "produto",
    "serviço",
    "equipe",
    "agenda",
    "retorno",
    "orçamento",
    "pagamento",
    "nota",
    "fiscal",
    "envio",
    "pedido",
    "suporte",
    "dúvida",
    "atendimento",
]


def matcher_document(index: int, rng: random.Random) -> dict[str, Any]:
    """A realistic mix: most rules are scoped by kind and test text; none matches the message
    except the last few, so every rule is examined (the worst case for a verdict)."""
    kind = ("chat.message", "agent.action", "lead.outreach")[index % 3]
    document: dict[str, Any] = {"subject_kinds": [kind, "chat.message"]}
    flavour = index % 6
    if flavour == 0:
        document["keywords"] = [f"segredo{index}", f"confidencial {index}", "acao judicial x"]
    elif flavour == 1:
        document["patterns"] = [rf"(?i)contrato\s+n[ºo]?\s*{index}\d{{3}}", rf"\bprojeto-{index}\b"]
    elif flavour == 2:
        document["detectors"] = [("cpf", "cnpj", "email", "phone")[index % 4]]
        document["requester_roles"] = ["member"]
    elif flavour == 3:
        document["agents"] = {"ids": [str(uuid.UUID(int=rng.getrandbits(128)))]}
        document["action_types"] = ["email.send"]
    elif flavour == 4:
        document["estimated_tokens_above"] = 100_000 + index
    else:
        document["keywords"] = [rng.choice(WORDS) + f"-{index}"]
        document["detectors"] = ["cnpj"]
    return document


def build_rules(count: int, rng: random.Random) -> list[tuple[dict[str, Any], Rule]]:
    rules = []
    for index in range(count):
        document = matcher_document(index, rng)
        effect = ("allow", "require_approval", "block")[index % 3]
        rules.append(
            (
                document,
                Rule(
                    rule_id=uuid.uuid4(),
                    version=1,
                    name=f"rule {index}",
                    priority=rng.randint(-100, 100),
                    effect=effect,  # type: ignore[arg-type]
                    matcher=parse_matcher(document),
                    required_approvals=2 if effect == "require_approval" else None,
                ),
            )
        )
    return rules


def message(length: int, rng: random.Random) -> str:
    words: list[str] = []
    while sum(len(w) + 1 for w in words) < length:
        words.append(rng.choice(WORDS))
    text = " ".join(words)
    tail = " contato joao.silva@empresa.com.br, cpf 529.982.247-25, tel (11) 91234-5678"
    return (text[: length - len(tail)] + tail)[:length]


def timed(fn: Callable[[], Any], runs: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered), 4),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 4),
        "p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))], 4),
        "max_ms": round(ordered[-1], 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rules", type=int, default=100, help="active rules (default 100)")
    parser.add_argument("--chars", type=int, default=2000, help="message length (default 2000)")
    parser.add_argument("--evaluations", type=int, default=2000, help="timed evaluations")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)  # noqa: S311 - reproducible test data, not a secret
    pairs = build_rules(args.rules, rng)
    rules = [rule for _, rule in pairs]
    documents = [document for document, _ in pairs]
    text = message(args.chars, rng)
    subject = Subject(
        kind="chat.message", id="bench", text=text, requester_roles=frozenset({"member"})
    )
    rule_set = RuleSet(rules)
    decision = rule_set.evaluate(subject, Default())

    def fresh_subject() -> Subject:
        # A new subject each time: no detector or normalization result is reused.
        return subject.model_copy()

    warm = timed(lambda: rule_set.evaluate(fresh_subject(), Default()), args.evaluations, 100)
    per_call = timed(lambda: evaluate(rules, fresh_subject(), Default()), args.evaluations // 4, 20)
    load = timed(
        lambda: RuleSet(
            Rule(r.rule_id, r.version, r.name, r.priority, r.effect, parse_matcher(d, trusted=True),
                 r.required_approvals)
            for d, r in zip(documents, rules, strict=True)
        ),
        max(20, args.evaluations // 20),
        5,
    )  # fmt: skip
    # The rows as the gate's policy query returns them (the matcher as JSON text).
    rows = [
        {
            "rule_id": r.rule_id,
            "version": r.version,
            "name": r.name,
            "priority": r.priority,
            "effect": r.effect,
            "matcher": json.dumps(d),
            "required_approvals": r.required_approvals,
            "approval_ttl_s": None,
            "escalate_after_s": None,
            "escalation_role": None,
        }
        for d, r in zip(documents, rules, strict=True)
    ]
    compiler, tenant = RuleCompiler(), uuid.uuid4()
    compiler.rule_set(tenant, rows)  # the first invocation parses and builds
    reuse = timed(lambda: compiler.rule_set(tenant, rows), args.evaluations, 20)
    if compiler.built != 1:
        raise SystemExit("the rule set was built again: the cache did not hold it")
    report = {
        "rules": args.rules,
        "message_chars": len(text),
        "verdict": decision.effect,
        "matched_rules": len(decision.matched),
        "evaluate": summary(warm),
        "per_call_with_rule_set_build": summary(per_call),
        "load_100_matchers_and_build": summary(load),
        "reuse_100_compiled_rules": summary(reuse),
        "target_p50_ms": TARGET_P50_MS,
        "ok": statistics.median(warm) <= TARGET_P50_MS,
    }
    print(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
