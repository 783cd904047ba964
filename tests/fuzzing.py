"""Fuzz a served API: schemathesis cases from its own OpenAPI document (/docs.json), valid and
invalid, plus hand-made hostile bodies for every field. Every answer must be below 500, and every
4xx must be a JSON object whose "error" names the problem."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

import httpx
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

HOSTILE_VALUES = [
    None, True, -1, 0, 2**63, -(2**63) - 1, 10**400, 1e308, -1e308, 0.5, "", "abc", "NaN", "∞", "😀" * 50,
    "\u0000", "\ud7ff\ue000", "a" * 10_000, [], [1, 2], {}, {"nested": [[[]]]},
]  # fmt: skip
RAW_BODIES = [
    b"{", b"}", b"[", b"null", b"true", b"1", b'"x"', b"[]", b"\xff\xfe\xfd", b"{\"seed\": }", b"{'seed': 1}",
    b'{"seed": NaN}', b'{"seed": Infinity}', b'{"seed": -Infinity}', b'{"seed": 1e99999}',
    b'{"seed": 1, "seed": "x"}', b"[" * 5000 + b"]" * 5000, b'{"a":' * 3000 + b"1" + b"}" * 3000,
    b'{"z": [' + b",".join([b"1e308"] * 100) + b"]}", b'{"z": [' + b",".join([b"NaN"] * 100) + b"]}",
    json.dumps({"model": "ünïcødé-模型-🎞"}).encode(), b"\x00" * 100, b" " * 60_000,
]  # fmt: skip


@dataclass
class FuzzReport:
    requests: int = 0
    by_status: Counter = field(default_factory=Counter)
    generated: int = 0  # of which schemathesis made
    problems: list[str] = field(default_factory=list)
    unsatisfiable: list[str] = field(default_factory=list)  # (operation, mode) with no case to make

    def check_status(self, label: str, status: int) -> bool:
        """Count an answer; False (and a problem) for a 5xx."""
        self.requests += 1
        self.by_status[status] += 1
        if status >= 500:
            self.problems.append(f"{label}: {status}")
        return status < 500

    def check(self, label: str, status: int, content_type: str, body: bytes) -> None:
        if not self.check_status(label, status):
            self.problems[-1] += f" {body[:200]!r}"
        elif status >= 400:
            try:
                payload = json.loads(body)
                ok = isinstance(payload, dict) and isinstance(payload.get("error"), str) and payload["error"]
            except ValueError:
                ok = False
            if not ok or "json" not in content_type:
                self.problems.append(f"{label}: {status} without a JSON error: {body[:200]!r}")

    def summary(self) -> dict:
        return {"requests": self.requests, "schemathesis_cases": self.generated,
                "by_status": dict(sorted(self.by_status.items())), "problems": len(self.problems),
                "no_cases": self.unsatisfiable}  # fmt: skip


def fuzz_schema(url: str, report: FuzzReport, cases_per_mode: int) -> None:
    schema = schemathesis.openapi.from_url(f"{url}/docs.json")
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            label = f"{operation.method.upper()} {operation.path} [{mode.value}]"
            try:
                _cases(url, report, operation, mode, label, cases_per_mode)
            except Unsatisfiable:  # nothing invalid to send (an operation without parameters)
                report.unsatisfiable.append(label)


def _cases(url, report, operation, mode, label, count) -> None:
    @settings(max_examples=count, deadline=None, database=None, derandomize=True,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(operation.as_strategy(generation_mode=mode))
    def run(case):
        response = case.call(base_url=url, timeout=120)
        report.generated += 1
        media = response.headers.get("content-type", "")  # schemathesis gives header lists
        media = ",".join(media) if isinstance(media, list) else media
        report.check(f"{label} {case.body!r:.120}", response.status_code, media, response.content)

    run()


MEDIA_TYPES = (
    "text/plain", "application/x-www-form-urlencoded", "multipart/form-data", "multipart/form-data; boundary=x",
    "application/vnd.bentoml+pickle", "application/octet-stream", "image/png", "application/json-patch+json",
    "application/xml", "*/*", "invalid",
)  # fmt: skip


def fuzz_by_hand(url: str, report: FuzzReport, fields: dict[str, list[str]]) -> None:
    """Every hostile value in every field of every API, plus raw bodies that are not (good) JSON."""
    with httpx.Client(base_url=url, timeout=120) as client:
        for path, names in fields.items():
            for name in names:
                for value in HOSTILE_VALUES:
                    body = json.dumps({name: value}).encode()
                    r = client.post(path, content=body, headers={"content-type": "application/json"})
                    report.check(f"{path} {name}={value!r:.40}", r.status_code, r.headers.get("content-type", ""),
                                 r.content)  # fmt: skip
            for body in RAW_BODIES:
                r = client.post(path, content=body, headers={"content-type": "application/json"})
                report.check(f"{path} raw {body[:40]!r}", r.status_code, r.headers.get("content-type", ""), r.content)
            huge = b'{"seed": 1, "pad": "' + b"x" * (2 << 20) + b'"}'
            r = client.post(path, content=huge, headers={"content-type": "application/json"})
            report.check(f"{path} 2 MiB body", r.status_code, r.headers.get("content-type", ""), r.content)
            for media in MEDIA_TYPES:  # with a body and without one, with and without a charset
                for body in (b'{"seed": 1}', b""):
                    for suffix in ("", "; charset=latin-1"):
                        r = client.post(path, content=body, headers={"content-type": media + suffix})
                        report.check(f"{path} as {media}{suffix} ({len(body)} bytes)", r.status_code,
                                     r.headers.get("content-type", ""), r.content)  # fmt: skip
            for encoding in ("gzip", "br", "identity"):
                r = client.post(path, content=b'{"seed": 1}',
                                headers={"content-type": "application/json", "content-encoding": encoding})  # fmt: skip
                report.check(f"{path} encoded {encoding}", r.status_code, r.headers.get("content-type", ""), r.content)
            for method in ("GET", "PUT", "DELETE", "PATCH", "OPTIONS"):
                r = client.request(method, path)
                report.check(f"{method} {path}", r.status_code, r.headers.get("content-type", ""), r.content)
            r = client.head(path)  # no body comes back: only the status can be checked
            report.check_status(f"HEAD {path}", r.status_code)
