"""A tiny prediction service for the docker-compose demo: a toy fraud model served over HTTP that logs
every prediction, failure and later feedback with logshipper's PredictionLogger.

``--load N`` also sends it about N requests a second (and the ground truth for most of them a little
later), with a slow daily drift in the amounts and a model that favours one region, so that the
overview, drift and fairness dashboards have something to show.

    python examples/demo_service.py --log-dir logs --port 8000 --load 5
    curl -s localhost:8000/predict -d '{"features": {"amount": 120, "country": "DE", "n_items": 2}}'
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import random
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from logshipper import PredictionLogger

MODEL = "fraud"
REGIONS = ("EU", "NA", "APAC", "LATAM")
AGE_BANDS = ("18-24", "25-34", "35-54", "55+")
COUNTRIES = {"EU": ("DE", "FR", "ES"), "NA": ("US", "CA"), "APAC": ("JP", "IN", "AU"), "LATAM": ("BR", "MX")}
RISKY_COUNTRIES = {"BR", "IN"}


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


@dataclass(frozen=True)
class FraudModel:
    """A logistic score over amount, basket size and country; ``region_bias`` is the unfairness it learned."""

    version: str
    amount_weight: float = 0.9
    region_bias: float = 0.0

    def predict(self, features: dict[str, Any], groups: dict[str, Any]) -> tuple[int, float]:
        """(label, score); a ValueError names the bad input."""
        amount = features.get("amount")
        if not isinstance(amount, (int, float)) or isinstance(amount, bool) or amount < 0:
            raise ValueError(f"features.amount must be a number >= 0, got {amount!r}")
        n_items = features.get("n_items", 1)
        if not isinstance(n_items, int) or n_items < 1:
            raise ValueError(f"features.n_items must be an integer >= 1, got {n_items!r}")
        x = self.amount_weight * (math.log1p(amount) - 5.0) + 0.15 * (n_items - 2)
        x += 1.2 if features.get("country") in RISKY_COUNTRIES else 0.0
        x += self.region_bias if groups.get("region") == "APAC" else 0.0
        score = _sigmoid(x - 1.0)
        return int(score >= 0.5), round(score, 4)


MODELS = {"v1.0.0": FraudModel("v1.0.0"), "v1.1.0": FraudModel("v1.1.0", amount_weight=1.1, region_bias=0.8)}
CANARY_SHARE = 0.2  # share of traffic served by the newer version


@dataclass
class Service:
    """Routes requests to a model version and logs what happened."""

    loggers: dict[str, PredictionLogger]
    rng: random.Random = field(default_factory=random.Random)

    def predict(self, request: dict[str, Any]) -> dict[str, Any]:
        version = "v1.1.0" if self.rng.random() < CANARY_SHARE else "v1.0.0"
        features = request.get("features") or {}
        groups = request.get("groups") or {}
        plog = self.loggers[version]
        started = time.perf_counter()
        try:
            label, score = MODELS[version].predict(features, groups)
        except ValueError as exc:
            latency = (time.perf_counter() - started) * 1000
            plog.failure(exc, features=features, groups=groups, entity_id=request.get("entity_id"), latency_ms=latency)
            raise
        latency = (time.perf_counter() - started) * 1000 + self.rng.expovariate(1 / 8.0)
        pid = plog.prediction(
            features=features,
            prediction=label,
            score=score,
            groups=groups,
            entity_id=request.get("entity_id"),
            latency_ms=round(latency, 3),
        )
        return {"prediction_id": pid, "prediction": label, "score": score, "model_version": version}

    def feedback(self, request: dict[str, Any]) -> None:
        pid, label = request.get("prediction_id"), request.get("label")
        if not isinstance(pid, str) or label not in (0, 1):
            raise ValueError("feedback needs a prediction_id (string) and a label (0 or 1)")
        self.loggers["v1.0.0"].feedback(pid, label=label)


def make_handler(service: Service) -> type[BaseHTTPRequestHandler]:
    """The HTTP routes: POST /predict, POST /feedback, GET /healthz."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/healthz":
                self._reply(200, {"status": "ok"})
            else:
                self._reply(404, {"error": f"no route {self.path}"})

        def do_POST(self) -> None:
            try:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if not isinstance(body, dict):
                    raise ValueError("the request body must be a JSON object")
                if self.path == "/predict":
                    self._reply(200, service.predict(body))
                elif self.path == "/feedback":
                    service.feedback(body)
                    self._reply(202, {"status": "accepted"})
                else:
                    self._reply(404, {"error": f"no route {self.path}"})
            except ValueError as exc:
                self._reply(422, {"error": str(exc)})

        def _reply(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            return None

    return Handler


@dataclass
class Traffic:
    """Synthetic requests: 500 users, amounts drifting over the day, 1% malformed, truth from a fair model."""

    rng: random.Random
    period_s: float = 6 * 3600.0

    def request(self, now: float) -> tuple[dict[str, Any], float]:
        """One /predict body and the true probability of fraud behind it."""
        user = self.rng.randrange(500)
        region = REGIONS[user % len(REGIONS)]
        groups = {"region": region, "age_band": AGE_BANDS[(user // 4) % len(AGE_BANDS)]}
        shift = 0.6 * math.sin(2 * math.pi * now / self.period_s)
        amount = round(self.rng.lognormvariate(4.2 + shift, 0.9), 2)
        features: dict[str, Any] = {
            "amount": amount,
            "country": self.rng.choice(COUNTRIES[region]),
            "n_items": 1 + int(self.rng.expovariate(0.5)),
        }
        if self.rng.random() < 0.01:
            features["amount"] = "n/a"
        truth = _sigmoid(0.9 * (math.log1p(amount) - 5.0) + (1.2 if features["country"] in RISKY_COUNTRIES else 0) - 1)
        return {"features": features, "groups": groups, "entity_id": f"user-{user}"}, truth


def generate_load(base_url: str, rate: float, stop: threading.Event, seed: int | None = None) -> None:
    """Send about ``rate`` requests a second until ``stop`` is set; label 70% of them 10-90 s later."""
    rng = random.Random(seed)
    traffic = Traffic(rng)
    pending: list[tuple[float, str, int]] = []
    while not stop.is_set():
        now = time.time()
        body, truth = traffic.request(now)
        answer = _post(f"{base_url}/predict", body)
        if answer and rng.random() < 0.7:
            heapq.heappush(pending, (now + rng.uniform(10, 90), answer["prediction_id"], int(rng.random() < truth)))
        while pending and pending[0][0] <= now:
            _, pid, label = heapq.heappop(pending)
            _post(f"{base_url}/feedback", {"prediction_id": pid, "label": label})
        stop.wait(rng.expovariate(rate))


def _post(url: str, body: dict[str, Any]) -> dict[str, Any] | None:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read() or b"{}")
    except (OSError, ValueError):
        return None


def main(argv: list[str] | None = None) -> int:
    """Serve the demo model, optionally with a load generator, until interrupted."""
    parser = argparse.ArgumentParser(description="predwatch demo prediction service")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--log-dir", default="logs", help="daily files <dir>/<service>/predictions-YYYY-MM-DD.ndjson")
    parser.add_argument("--service", default="fraud-api")
    parser.add_argument("--load", type=float, default=0.0, help="requests per second to send itself (0: none)")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    from logshipper import PredictionLogger, configure

    configure(service=args.service, log_dir=args.log_dir)
    service = Service({v: PredictionLogger(model=MODEL, version=v) for v in MODELS}, random.Random(args.seed))
    server = ThreadingHTTPServer((args.host, args.port), make_handler(service))
    stop = threading.Event()
    if args.load > 0:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        threading.Thread(target=generate_load, args=(url, args.load, stop, args.seed), daemon=True).start()
    print(f"demo service on http://{args.host}:{server.server_address[1]}, logging to {args.log_dir}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
