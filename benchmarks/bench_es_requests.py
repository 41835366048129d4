"""What each job asks of Elasticsearch: searches, requests, and the largest request body, against a local stand-in.

    python benchmarks/bench_es_requests.py [--labels 1000000] [--rows 1000000]

The stand-in on 127.0.0.1 answers with responses shaped as Elasticsearch 8 gives them, sized for a window of
``--rows`` predictions of which ``--labels`` have feedback: aggregations get plausible buckets and values,
scans get pages of generated hits (feedback sorted by prediction id, label lookups the ids asked for).  The
numbers are about the requests, not the answers: how many searches a job sends and how large the bodies grow.
It works with any version of the store on ``PYTHONPATH`` (run it with an older checkout first for a baseline):

    PYTHONPATH=/path/to/old/checkout python benchmarks/bench_es_requests.py
"""

from __future__ import annotations

import argparse
import json
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

NUMERIC = [f"f{i}" for i in range(10)]
CATEGORICAL = [f"c{i}" for i in range(10)]
START = datetime(2026, 11, 20, tzinfo=timezone.utc)


def _pid(i: int) -> str:
    return f"0193{i:028x}"


class Responder:
    """Synthetic answers to whatever the store asks, and a record of what it sent."""

    def __init__(self, rows: int, labels: int) -> None:
        self.rows, self.labels = rows, labels
        self.sent: list[tuple[str, str, int]] = []
        self.lock = threading.Lock()

    # ---- aggregations ------------------------------------------------------------------------------
    def aggs(self, spec: dict[str, Any], n: float) -> dict[str, Any]:
        return {name: self.agg(body, n) for name, body in spec.items()}

    def agg(self, body: dict[str, Any], n: float) -> dict[str, Any]:
        sub_spec = body.get("aggregations") or body.get("aggs") or {}
        (kind,) = [k for k in body if k not in ("aggregations", "aggs", "meta")]
        spec = body[kind]
        field = spec.get("field", "") if isinstance(spec, dict) else ""
        if kind == "filter":
            text = json.dumps(spec)
            inside = 0.0 if "_ignored" in text else float(self.labels) if "ml.feedback" in text else n
            return {"doc_count": inside, **self.aggs(sub_spec, inside)}
        if kind == "missing":
            return {"doc_count": 0, **self.aggs(sub_spec, 0.0)}
        if kind == "terms":
            if "sample_rate" in field:
                return {"sum_other_doc_count": 0, "buckets": [{"key": 1.0, "doc_count": n, **self.aggs(sub_spec, n)}]}
            keys = ["a", "b", "c"]
            return {
                "doc_count_error_upper_bound": 0,
                "sum_other_doc_count": 0,
                "buckets": [{"key": k, "doc_count": n / 3, **self.aggs(sub_spec, n / 3)} for k in keys],
            }
        if kind in ("sum", "value_count"):
            return {"value": n}
        if kind in ("min", "max"):
            return {"value": 0.0 if kind == "min" else 1.0}
        if kind == "extended_stats":
            return {"count": n, "min": 0.0, "max": 1.0, "avg": 0.5, "sum": n / 2, "sum_of_squares": n / 3}
        if kind == "percentiles":
            return {"values": [{"key": p, "value": p / 100} for p in spec["percents"]]}
        if kind == "range":
            ranges = spec["ranges"]
            share = n / len(ranges)
            buckets = {r["key"]: {"doc_count": share, **self.aggs(sub_spec, share)} for r in ranges}
            return {"buckets": buckets}
        if kind == "composite":
            if spec.get("after"):
                return {"buckets": []}
            names = [next(iter(s)) for s in spec["sources"]]
            keys = [
                {k: ("x" if "rate" not in k else None) for k in names},
                {k: ("y" if "rate" not in k else None) for k in names},
            ]
            return {
                "buckets": [{"key": k, "doc_count": n / 2, **self.aggs(sub_spec, n / 2)} for k in keys],
                "after_key": keys[-1],
            }
        if kind == "date_histogram":
            lo, hi = spec["extended_bounds"]["min"], spec["extended_bounds"]["max"]
            step = int(spec["fixed_interval"].removesuffix("ms"))
            keys = list(range(lo, hi + 1, step))
            return {
                "buckets": [{"key": k, "doc_count": n / len(keys), **self.aggs(sub_spec, n / len(keys))} for k in keys]
            }
        if kind == "top_hits":
            last = spec.get("sort", [{}])[0]
            order = next(iter(last.values()), {}).get("order", "asc") if isinstance(last, dict) else "asc"
            pid = _pid(0) if order == "asc" else _pid(self.rows - 1)
            return {"hits": {"hits": [{"_id": pid, "sort": [pid]}]}}
        raise ValueError(f"no synthetic answer for a {kind} aggregation")

    # ---- hits --------------------------------------------------------------------------------------
    def source(self, i: int) -> dict[str, Any]:
        features = {f: (i % 97) / 97 for f in NUMERIC} | {c: "abc"[i % 3] for c in CATEGORICAL}
        return {
            "@timestamp": (START + timedelta(milliseconds=i)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "event": {"dataset": "ml.prediction", "outcome": "success"},
            "ml": {
                "prediction_id": _pid(i),
                "model": {"name": "fraud", "version": "v1"},
                "features": features,
                "prediction": {"label": i % 2, "score": (i % 89) / 89},
                "groups": {"region": "EU" if i % 2 else "US"},
                "sample_rate": 1.0,
            },
        }

    def feedback(self, i: int) -> dict[str, Any]:
        return {"@timestamp": "2026-11-21T00:00:00.000Z", "ml": {"prediction_id": _pid(i), "label": i % 2}}

    def hits(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        text = json.dumps(body.get("query", {}))
        size = int(body.get("size", 10))
        after = body.get("search_after")
        if "ml.feedback" in text:  # a scan of the feedback, sorted by prediction id (or the old collapsed lookup)
            ids = _terms(body.get("query"))
            if ids is not None:
                return [{"_source": self.feedback(int(p[4:], 16)), "sort": [p]} for p in ids]
            start = (
                int(after[0][4:], 16) + 1 if after and isinstance(after[0], str) else (after[-1] + 1 if after else 0)
            )
            stop = min(start + size, self.labels)
            return [{"_source": self.feedback(i), "sort": [_pid(i), 0, i]} for i in range(start, stop)]
        ids = _terms(body.get("query"))
        if ids is not None:  # a lookup of labelled predictions by id
            return [{"_source": self.source(int(p[4:], 16)), "sort": [0]} for p in ids]
        start = int(after[-1]) + 1 if after else 0
        stop = min(start + size, self.rows)
        return [{"_source": self.source(i), "sort": [i, _pid(i), i], "_score": 1.0} for i in range(start, stop)]

    # ---- requests ----------------------------------------------------------------------------------
    def answer(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        if path.endswith("/_field_caps"):
            fields = {f"ml.features.{f}": {"double": {"type": "double"}} for f in NUMERIC}
            fields |= {f"ml.features.{c}": {"keyword": {"type": "keyword"}} for c in CATEGORICAL}
            fields |= {
                "ml.prediction.label": {"double": {"type": "double"}},
                "ml.prediction.score": {"double": {"type": "double"}},
                "ml.groups.region": {"keyword": {"type": "keyword"}},
                "ml.sample_rate": {"double": {"type": "double"}},
                "ml.label": {"double": {"type": "double"}},
            }
            return 200, {"indices": [], "fields": fields}
        if path.endswith("/_pit") and method == "POST":
            return 200, {"id": "pit"}
        if path == "/_pit":
            return 200, {"succeeded": True, "num_freed": 1}
        if path.endswith("/_bulk"):
            return 200, {"errors": False, "items": []}
        if path.endswith("/_search"):
            body = body or {}
            out: dict[str, Any] = {"hits": {"hits": self.hits(body) if body.get("size", 10) else []}}
            if body.get("aggregations") or body.get("aggs"):
                out["aggregations"] = self.aggs(body.get("aggregations") or body.get("aggs"), float(self.rows))
            return 200, out
        if "/_doc/" in path or "/_create/" in path or method == "PUT":
            return 404, {"error": {"type": "not_found", "reason": "not found"}, "status": 404}
        return 200, {}

    def serve(self) -> tuple[ThreadingHTTPServer, str]:
        responder = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                path = unquote(urlsplit(self.path).path)
                with responder.lock:
                    responder.sent.append((self.command, path, len(raw)))
                body = json.loads(raw) if raw and "ndjson" not in (self.headers.get("Content-Type") or "") else None
                status, answer = responder.answer(self.command, path, body)
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-Elastic-Product", "Elasticsearch")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve

            def log_message(self, *args: Any) -> None:
                return

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server, f"http://127.0.0.1:{server.server_address[1]}"


def _terms(query: Any) -> list[str] | None:
    """The prediction ids of a ``terms`` filter on ``ml.prediction_id``, if the query has one."""
    if isinstance(query, dict):
        terms = query.get("terms")
        if isinstance(terms, dict) and "ml.prediction_id" in terms:
            return list(terms["ml.prediction_id"])
        for value in query.values():
            found = _terms(value)
            if found is not None:
                return found
    elif isinstance(query, list):
        for value in query:
            found = _terms(value)
            if found is not None:
                return found
    return None


def _replayed(frame: Any) -> list[int]:
    """The model the replay job re-runs: it predicts what the stand-in logged (``label = i % 2``) for none."""
    return [0] * len(frame)


JOB_CONFIGS = {  # each job's settings, by the name of its configuration class (absent in older checkouts)
    "drift": ("DriftConfig", {"reference": {"last": "1d"}}),
    "fairness": ("FairnessConfig", {"groups": ["region"], "min_group_size": 1}),
    "performance": ("PerformanceConfig", {}),
    "ops": ("OpsConfig", {}),
    "canary": ("CanaryConfig", {"window": "1d"}),
    "estimation": ("EstimationConfig", {"reference": {"last": "1d"}}),
}


def _job(job: str) -> Any:
    """A function of (store, window) running ``job`` over the model ``fraud``, or ``None`` when this checkout
    has no such job."""
    from analyzers.config import models

    if job == "replay":
        from analyzers.jobs.replay import replay

        return lambda store, window: replay(store, "fraud", window, target=_replayed)
    name, settings = JOB_CONFIGS[job]
    config_class = getattr(models, name, None)
    if config_class is None:
        return None
    from analyzers.runner import job_function

    config = config_class(**settings)
    return lambda store, window: job_function(job)(store, "fraud", config, window)


def run(job: str, rows: int, labels: int) -> dict[str, Any]:
    """One job over a day against the stand-in: its searches, requests and request bodies."""
    from analyzers.store.elastic import ElasticsearchStore
    from analyzers.timeutil import Window
    from elasticsearch import Elasticsearch

    task = _job(job)
    if task is None:
        return {"job": job, "status": "not in this checkout"}
    responder = Responder(rows, labels)
    server, url = responder.serve()
    client = Elasticsearch(url, max_retries=0, request_timeout=600)
    store = ElasticsearchStore(client)
    window = Window(START, START + timedelta(days=1))
    finding = task(store, window)
    client.close()
    server.shutdown()
    searches = [s for s in responder.sent if s[1].endswith("_search")]
    return {
        "job": job,
        "status": finding.status,
        "error": finding.error,
        "searches": len(searches),
        "requests": len(responder.sent),
        "largest_body_bytes": max((s[2] for s in responder.sent), default=0),
        "bytes_sent": sum(s[2] for s in responder.sent),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="predictions in each window")
    parser.add_argument("--labels", type=int, default=1_000_000, help="feedback events of the window")
    parser.add_argument("--jobs", default="drift,fairness,performance,ops,replay,canary,estimation")
    args = parser.parse_args()
    for job in args.jobs.split(","):
        print(json.dumps(run(job, args.rows, args.labels)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
