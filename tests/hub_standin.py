"""A stand-in Hugging Face Hub on 127.0.0.1, for tests and offline trials of ``ponogan push`` / loading.

It serves the endpoints ``huggingface_hub`` calls to create a repo and a branch (any bearer token
is accepted; none is a 401, as on the Hub), commit files (every
file is declared "regular", so contents come base64-encoded inside the commit: no LFS or Xet), and
download them (repo info, tree listing, ``resolve`` with HEAD and GET). Repos live in memory;
``hub.repos[repo_id]`` holds ``{"private", "refs": {branch: commit}, "commits": {commit: {path: bytes}}}``.

    python tests/hub_standin.py [PORT]
    HF_ENDPOINT=http://127.0.0.1:PORT HF_TOKEN=x ponogan push RUN --repo me/run   # in another shell
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class StandInHub:
    """The repos and the server; ``start()`` serves on a free port, ``url`` is its endpoint."""

    def __init__(self, port: int = 0):
        self.repos: dict[str, dict] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request, for tests
        self.lock = threading.Lock()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                hub.handle(self, "GET")

            def do_HEAD(self):
                hub.handle(self, "HEAD")

            def do_POST(self):
                hub.handle(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> StandInHub:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ---- repos
    def _commit(self, repo: dict, parent: str | None, files: dict[str, bytes]) -> str:
        tree = dict(repo["commits"][parent]) if parent else {}
        tree.update(files)
        digest = hashlib.sha1(json.dumps(sorted((p, git_blob_id(d)) for p, d in tree.items())).encode())
        digest.update(str(len(repo["commits"])).encode())
        commit = digest.hexdigest()
        repo["commits"][commit] = tree
        return commit

    def create(self, repo_id: str, private: bool = False) -> bool:
        with self.lock:
            if repo_id in self.repos:
                return False
            repo = {"private": private, "refs": {}, "commits": {}}
            repo["refs"]["main"] = self._commit(repo, None, {".gitattributes": GITATTRIBUTES})
            self.repos[repo_id] = repo
            return True

    def _revision(self, repo: dict, revision: str) -> str | None:
        revision = unquote(revision)
        if revision in repo["refs"]:
            return repo["refs"][revision]
        return revision if revision in repo["commits"] else None

    # ---- HTTP
    def handle(self, req: BaseHTTPRequestHandler, method: str) -> None:
        path = urlsplit(req.path).path
        self.requests.append((method, path))
        length = int(req.headers.get("Content-Length") or 0)
        body = req.rfile.read(length) if length else b""
        parts = [p for p in path.split("/") if p]
        try:
            writes = method == "POST" and not path.endswith(("/preupload/main", "/validate-yaml"))
            if writes and not req.headers.get("Authorization", "").startswith("Bearer "):
                return self.send(req, 401, {"error": "Invalid credentials in Authorization header"})
            if method == "POST" and path == "/api/repos/create":
                payload = json.loads(body)
                repo_id = f"{payload['organization']}/{payload['name']}"
                if not self.create(repo_id, payload.get("visibility") == "private"):
                    taken = {"error": "You already created this model repo", "url": f"{self.url}/{repo_id}"}
                    return self.send(req, 409, taken)
                return self.send(req, 200, {"url": f"{self.url}/{repo_id}"})
            if method == "POST" and path == "/api/validate-yaml":
                return self.send(req, 200, {"errors": [], "warnings": []})
            if len(parts) >= 5 and parts[:2] == ["api", "models"]:
                return self.api(req, method, f"{parts[2]}/{parts[3]}", parts[4], "/".join(parts[5:]), body)
            if len(parts) >= 5 and parts[2] == "resolve":
                return self.resolve(req, method, f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:]))
            return self.send(req, 404, {"error": "not found"}, code="RepoNotFound")
        except (KeyError, ValueError) as err:
            return self.send(req, 400, {"error": f"bad request: {err}"})

    def api(self, req, method: str, repo_id: str, action: str, rest: str, body: bytes) -> None:
        repo = self.repos.get(repo_id)
        if repo is None:
            return self.send(req, 404, {"error": "Repository not found"}, code="RepoNotFound")
        revision, _, _ = rest.partition("/")
        if method == "POST" and action == "branch":
            with self.lock:
                if unquote(revision) in repo["refs"]:
                    return self.send(req, 409, {"error": "branch exists"})
                repo["refs"][unquote(revision)] = repo["refs"]["main"]
            return self.send(req, 200, {})
        commit = self._revision(repo, revision or "main")
        if commit is None:
            return self.send(req, 404, {"error": "Invalid rev id"}, code="RevisionNotFound")
        if method == "POST" and action == "preupload":
            files = json.loads(body)["files"]
            modes = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]
            return self.send(req, 200, {"files": modes})
        if method == "POST" and action == "commit":
            files = {}
            for line in body.splitlines():
                item = json.loads(line)
                if item["key"] == "file":
                    files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                elif item["key"] != "header":
                    return self.send(req, 400, {"error": f"unsupported commit entry {item['key']}"})
            with self.lock:
                new = self._commit(repo, commit, files)
                repo["refs"][unquote(revision)] = new
            return self.send(req, 200, {"commitUrl": f"{self.url}/{repo_id}/commit/{new}", "commitOid": new})
        tree = repo["commits"][commit]
        if method == "GET" and action == "revision":
            siblings = [{"rfilename": p} for p in sorted(tree)]
            info = {"id": repo_id, "modelId": repo_id, "sha": commit, "private": repo["private"]}
            return self.send(req, 200, {**info, "siblings": siblings})
        if method == "GET" and action == "tree":
            entries = [
                {"type": "file", "path": p, "size": len(d), "oid": git_blob_id(d)}
                for p, d in sorted(tree.items())
            ]
            return self.send(req, 200, entries)
        return self.send(req, 404, {"error": f"no endpoint {action}"})

    def resolve(self, req, method: str, repo_id: str, revision: str, filename: str) -> None:
        repo = self.repos.get(repo_id)
        if repo is None:
            return self.send(req, 404, {"error": "Repository not found"}, code="RepoNotFound")
        commit = self._revision(repo, revision)
        if commit is None:
            return self.send(req, 404, {"error": "Invalid rev id"}, code="RevisionNotFound")
        data = repo["commits"][commit].get(unquote(filename))
        if data is None:
            return self.send(req, 404, {"error": "Entry not found"}, code="EntryNotFound")
        headers = {"X-Repo-Commit": commit, "ETag": f'"{git_blob_id(data)}"'}
        self.send_bytes(req, 200, data, "application/octet-stream", headers, body=method == "GET")

    def send(self, req, status: int, payload, code: str | None = None) -> None:
        headers = {"X-Error-Code": code} if code else {}
        if status >= 400:
            headers["X-Error-Message"] = payload.get("error", "")
        self.send_bytes(req, status, json.dumps(payload).encode(), "application/json", headers)

    @staticmethod
    def send_bytes(req, status: int, data: bytes, kind: str, headers: dict, body: bool = True) -> None:
        req.send_response(status)
        req.send_header("Content-Type", kind)
        req.send_header("Content-Length", str(len(data)))
        for key, value in headers.items():
            req.send_header(key, value)
        req.end_headers()
        if body:
            req.wfile.write(data)


if __name__ == "__main__":
    hub = StandInHub(int(sys.argv[1]) if len(sys.argv) > 1 else 8765)
    print(f"stand-in Hub at {hub.url} (Ctrl-C stops it; repos live in memory)")
    try:
        hub.server.serve_forever()
    except KeyboardInterrupt:
        hub.stop()
