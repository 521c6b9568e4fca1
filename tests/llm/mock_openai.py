"""A local OpenAI-compatible HTTP server for the LLM backend tests, on 127.0.0.1 only.

It serves POST /v1/chat/completions, POST /v1/completions (with `echo` and
prompt logprobs, as vLLM does), POST /v1/files, GET /v1/files/{id}/content,
POST /v1/batches and GET /v1/batches/{id}. Tests steer it through attributes:

- `chat_responder(body)` returns the assistant message content, or a dict with
  `content`, `reasoning_content` and `refusal`;
- `end_logprob(prefix)` returns the logprob of the end token appended to `prefix`;
- `faults` is a FIFO of fault names, each spent by the next model request;
- `rules` maps a substring of the request body to a fault applied every time;
- `delay` is added to every model request, in seconds;
- `batch_failure`, when set, makes every batch fail as a whole with that message.

Fault names: `429` (with Retry-After: `retry_after`), `500`, `slow` (waits
`slow_seconds` before replying), `drop` (closes the connection without a
reply), `truncated` (finish_reason=length), `refusal`, `content_filter`,
`invalid_json`, `surrogate` (a lone surrogate escape in the text), `401`
(echoes the key it received, as some servers do), `quota` (429 with
insufficient_quota), `bad_request` (400).

Run `python tests/llm/mock_openai.py --delay 0.1` to serve it from another
process; it prints the base URL on the first line.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import email.parser
import email.policy
import json
import math
import re
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HOST = "127.0.0.1"
END_TOKEN = "</think>"
DEFAULT_CONTENT = "Adding the numbers gives 42, so the answer is \\boxed{42}."
_TOKEN = re.compile(r"\s+|[A-Za-z]+|\d|[^\sA-Za-z\d]")


def default_end_logprob(prefix: str) -> float:
    """Return a logprob that is high after a blank line or a sentence end, low elsewhere."""
    if prefix.endswith("\n\n"):
        return math.log(0.8)
    if prefix.rstrip().endswith((".", "!", "?")):
        return math.log(0.5)
    return math.log(0.1)


class MockOpenAI:
    """The server and the state that tests read and steer; start it with `with MockOpenAI():`."""

    def __init__(self, *, api_key: str | None = None, delay: float = 0.0) -> None:
        self.api_key = api_key
        self.delay = delay
        self.retry_after = "0"
        self.slow_seconds = 2.0
        self.batch_polls_to_complete = 2
        # When set, every batch fails as a whole with this error message.
        self.batch_failure: str | None = None
        self.chat_responder: Callable[[dict[str, Any]], Any] = lambda body: DEFAULT_CONTENT
        self.end_logprob: Callable[[str], float] = default_end_logprob
        self.faults: collections.deque[str] = collections.deque()
        self.rules: dict[str, str] = {}
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.counts: collections.Counter[str] = collections.Counter()
        # TCP connections accepted; a client that keeps its connections opens few.
        self.connections = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.in_flight_history: list[int] = []
        self.request_times: list[float] = []
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self._batch_polls: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start the server first"
        return f"http://{HOST}:{self._server.server_address[1]}/v1"

    def start(self) -> MockOpenAI:
        handler = type("Handler", (_Handler,), {"mock": self})
        self._server = _QuietServer((HOST, 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> MockOpenAI:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def model_requests(self, path: str | None = None) -> list[dict[str, Any]]:
        """Return the bodies of model requests received, optionally for one path only."""
        with self._lock:
            return [body for seen, body in self.requests if path is None or seen == path]

    def _next_fault(self, body_text: str) -> str | None:
        with self._lock:
            for marker, fault in self.rules.items():
                if marker in body_text:
                    return fault
            return self.faults.popleft() if self.faults else None

    # Replies, shared by the HTTP handler and batch processing. Each returns
    # (status, headers, JSON body) or the name of a connection-level fault.

    def model_reply(self, path: str, body: dict[str, Any], fault: str | None):
        if fault == "429":
            error = {"message": "Rate limit reached", "type": "requests", "code": "rate_limit"}
            return 429, {"Retry-After": self.retry_after}, {"error": error}
        if fault == "quota":
            error = {
                "message": "You exceeded your current quota.",
                "type": "insufficient_quota",
                "code": "insufficient_quota",
            }
            return 429, {}, {"error": error}
        if fault == "500":
            return 500, {}, {"error": {"message": "internal error", "type": "server_error"}}
        if fault == "bad_request":
            error = {"message": "prompt is too long", "type": "invalid_request_error"}
            return 400, {}, {"error": error}
        if path == "/completions":
            return 200, {}, self._completion(body)
        return 200, {}, self._chat(body, fault)

    def _chat(self, body: dict[str, Any], fault: str | None) -> dict[str, Any]:
        produced = self.chat_responder(body)
        message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
        if isinstance(produced, dict):
            message.update(produced)
        else:
            message["content"] = produced
        finish_reason = "stop"
        if fault == "truncated":
            message["content"] = (message["content"] or "")[:20]
            finish_reason = "length"
        elif fault == "refusal":
            message["content"] = None
            message["refusal"] = "I can't help with that."
        elif fault == "content_filter":
            message["content"] = None
            finish_reason = "content_filter"
        elif fault == "invalid_json":
            message["content"] = '{"answer": 42'
        elif fault == "surrogate":
            message["content"] = "broken \ud800 text \\boxed{42}"
        content = message["content"] or ""
        return {
            "id": "chatcmpl-mock",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model", "mock"),
            "choices": [
                {"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}
            ],
            "usage": {
                "prompt_tokens": 10,
                "completion_tokens": max(1, len(content) // 4),
                "total_tokens": 10 + max(1, len(content) // 4),
            },
        }

    def _completion(self, body: dict[str, Any]) -> dict[str, Any]:
        prompt = str(body.get("prompt", ""))
        if prompt.endswith(END_TOKEN):
            prefix = prompt[: -len(END_TOKEN)]
            tokens = _TOKEN.findall(prefix) + [END_TOKEN]
        else:
            prefix = prompt
            tokens = _TOKEN.findall(prompt)
        offsets, position = [], 0
        for token in tokens:
            offsets.append(position)
            position += len(token)
        logprobs: list[float | None] = [None] + [-0.5] * (len(tokens) - 1)
        if prompt.endswith(END_TOKEN) and len(tokens) > 1:
            logprobs[-1] = self.end_logprob(prefix)
        generated = " ok"
        return {
            "id": "cmpl-mock",
            "object": "text_completion",
            "created": 0,
            "model": body.get("model", "mock"),
            "choices": [
                {
                    "index": 0,
                    "text": prompt + generated if body.get("echo") else generated,
                    "finish_reason": "length",
                    "logprobs": {
                        "tokens": [*tokens, generated],
                        "token_logprobs": [*logprobs, -1.0],
                        "text_offset": [*offsets, len(prompt)],
                        "top_logprobs": None,
                    },
                }
            ],
            "usage": {
                "prompt_tokens": len(tokens),
                "completion_tokens": 1,
                "total_tokens": len(tokens) + 1,
            },
        }

    def process_batch(self, batch: dict[str, Any]) -> None:
        """Reply to every line of a batch's input file and attach the output and error files."""
        output, errors = [], []
        for number, raw in enumerate(self.files[batch["input_file_id"]].splitlines()):
            line = json.loads(raw)
            path = line["url"].removeprefix("/v1")
            body_text = json.dumps(line["body"])
            fault = self._next_fault(body_text)
            status, _, reply = self.model_reply(path, line["body"], fault)
            entry = {
                "id": f"batch_req_{number}",
                "custom_id": line["custom_id"],
                "response": {"status_code": status, "request_id": f"req_{number}", "body": reply},
                "error": None,
            }
            (output if status == 200 else errors).append(json.dumps(entry))
        counts = {"total": len(output) + len(errors), "completed": len(output), "failed": 0}
        counts["failed"] = len(errors)
        batch["request_counts"] = counts
        if output:
            batch["output_file_id"] = self._store_file("\n".join(output).encode() + b"\n")
        if errors:
            batch["error_file_id"] = self._store_file("\n".join(errors).encode() + b"\n")
        batch["status"] = "completed"

    def _store_file(self, content: bytes) -> str:
        with self._lock:
            file_id = f"file-{len(self.files) + 1}"
            self.files[file_id] = content
        return file_id


class _QuietServer(ThreadingHTTPServer):
    # socketserver's default listen backlog of 5 overflows when a client opens 16 or
    # more connections at once: Linux then drops SYNs (retransmitted after 1 s) or
    # resets connections. uvicorn 0.55 defaults to a backlog of 2048.
    request_queue_size = 1024

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The `slow` and `drop` faults leave the client gone, so writes fail; that is expected.
        return None


class _Handler(BaseHTTPRequestHandler):
    mock: MockOpenAI
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; without TCP_NODELAY, Nagle's algorithm
    # and the client's delayed ACK add about 40 ms to every reply.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class name
        return None

    def setup(self) -> None:
        super().setup()
        with self.mock._lock:
            self.mock.connections += 1

    def _send_json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(data, ensure_ascii=True).encode("ascii")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _authorized(self) -> bool:
        expected = self.mock.api_key
        received = self.headers.get("Authorization", "").removeprefix("Bearer ")
        if expected is None or received == expected:
            return True
        self._unauthorized(received)
        return False

    def _unauthorized(self, received: str) -> None:
        error = {
            "message": f"Incorrect API key provided: {received}.",
            "type": "invalid_request_error",
            "code": "invalid_api_key",
        }
        self._send_json(401, {"error": error})

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def do_POST(self) -> None:  # noqa: N802 - the http.server method name
        raw = self._read_body()
        if not self._authorized():
            return
        path = self.path.removeprefix("/v1")
        if path in ("/chat/completions", "/completions"):
            self._model_request(path, raw)
        elif path == "/files":
            self._upload(raw)
        elif path == "/batches":
            self._create_batch(json.loads(raw))
        else:
            self._send_json(404, {"error": {"message": f"no route POST {self.path}"}})

    def do_GET(self) -> None:  # noqa: N802 - the http.server method name
        if not self._authorized():
            return
        path = self.path.removeprefix("/v1")
        match = re.fullmatch(r"/files/([^/]+)/content", path)
        if match and match.group(1) in self.mock.files:
            content = self.mock.files[match.group(1)]
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)
            return
        match = re.fullmatch(r"/batches/([^/]+)", path)
        if match and match.group(1) in self.mock.batches:
            self._send_json(200, self._poll_batch(match.group(1)))
            return
        self._send_json(404, {"error": {"message": f"no route GET {self.path}"}})

    def _model_request(self, path: str, raw: bytes) -> None:
        mock = self.mock
        body = json.loads(raw)
        fault = mock._next_fault(raw.decode("utf-8"))
        with mock._lock:
            mock.requests.append((path, body))
            mock.counts[path] += 1
            mock.request_times.append(time.monotonic())
            mock.in_flight += 1
            mock.max_in_flight = max(mock.max_in_flight, mock.in_flight)
            mock.in_flight_history.append(mock.in_flight)
        try:
            if mock.delay:
                time.sleep(mock.delay)
            if fault == "drop":
                self._drop()
                return
            if fault == "slow":
                time.sleep(mock.slow_seconds)
            if fault == "401":
                received = self.headers.get("Authorization", "").removeprefix("Bearer ")
                self._unauthorized(received)
                return
            status, headers, reply = mock.model_reply(path, body, fault)
            self._send_json(status, reply, headers)
        finally:
            with mock._lock:
                mock.in_flight -= 1

    def _upload(self, raw: bytes) -> None:
        header = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(header + raw)
        content, filename = b"", "upload.jsonl"
        for part in message.iter_parts():
            if part.get_param("name", header="content-disposition") == "file":
                content = part.get_payload(decode=True) or b""
                filename = part.get_filename() or filename
        file_id = self.mock._store_file(content)
        self.mock.counts["files"] += 1
        self._send_json(
            200,
            {
                "id": file_id,
                "object": "file",
                "bytes": len(content),
                "created_at": 0,
                "filename": filename,
                "purpose": "batch",
                "status": "processed",
            },
        )

    def _create_batch(self, request: dict[str, Any]) -> None:
        mock = self.mock
        if request.get("input_file_id") not in mock.files:
            self._send_json(400, {"error": {"message": "input file not found"}})
            return
        with mock._lock:
            batch_id = f"batch_{len(mock.batches) + 1}"
            mock.counts["batches"] += 1
            mock.batches[batch_id] = {
                "id": batch_id,
                "object": "batch",
                "endpoint": request["endpoint"],
                "input_file_id": request["input_file_id"],
                "completion_window": request["completion_window"],
                "created_at": 0,
                "status": "validating",
                "output_file_id": None,
                "error_file_id": None,
                "request_counts": {"total": 0, "completed": 0, "failed": 0},
            }
        self._send_json(200, mock.batches[batch_id])

    def _poll_batch(self, batch_id: str) -> dict[str, Any]:
        mock = self.mock
        batch = mock.batches[batch_id]
        with mock._lock:
            mock._batch_polls[batch_id] += 1
            polls = mock._batch_polls[batch_id]
        if batch["status"] in ("validating", "in_progress"):
            if mock.batch_failure is not None:
                batch["status"] = "failed"
                error = {"code": "invalid_input", "message": mock.batch_failure, "line": 1}
                batch["errors"] = {"object": "list", "data": [error]}
            elif polls >= mock.batch_polls_to_complete:
                mock.process_batch(batch)
            else:
                batch["status"] = "in_progress"
        return batch


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the mock OpenAI API on 127.0.0.1.")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds added to each reply")
    args = parser.parse_args()
    with MockOpenAI(delay=args.delay) as mock:
        print(mock.base_url, flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
