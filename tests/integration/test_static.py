"""test_static: the dashboard's embedded files (src/http/static/, served by
src/http/static.c): / is index.html, every file at /<name> with its
Content-Type, no auth even with tokens set, ETag + If-None-Match -> 304,
Cache-Control: no-cache, the security headers on the HTML, HEAD, 405 for
other methods, and no shadowing of the API's 404s."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from test_api import Base  # noqa: E402

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      "..", "..", "src", "http", "static")
TYPES = {"html": "text/html; charset=utf-8", "css": "text/css; charset=utf-8",
         "js": "text/javascript; charset=utf-8", "json": "application/json",
         "svg": "image/svg+xml"}


class StaticTest(Base):
    env = {"ORDERD_WORKERS": "1", "ORDERD_API_TOKENS": "secret-token"}

    def get(self, path, headers=None, method="GET"):
        return self.c.api(method, path, headers=headers, token="")

    def test_every_file_served_as_is(self):
        names = sorted(os.listdir(STATIC))
        self.assertIn("index.html", names)
        for name in names:
            with open(os.path.join(STATIC, name), "rb") as f:
                want = f.read()
            r = self.c.session().get(self.c.base + "/" + name)
            self.assertEqual(r.status_code, 200, name)
            self.assertEqual(r.content, want, name)
            ext = name.rsplit(".", 1)[-1]
            self.assertEqual(r.headers["Content-Type"], TYPES[ext], name)
            self.assertEqual(r.headers["Cache-Control"], "no-cache", name)
            self.assertEqual(r.headers["X-Content-Type-Options"], "nosniff")
            self.assertRegex(r.headers["ETag"], r'^"[0-9a-f]{16}"$')

    def test_root_is_index_with_security_headers(self):
        root = self.c.session().get(self.c.base + "/")
        index = self.c.session().get(self.c.base + "/index.html")
        self.assertEqual(root.status_code, 200)
        self.assertEqual(root.content, index.content)
        self.assertEqual(root.headers["ETag"], index.headers["ETag"])
        csp = root.headers["Content-Security-Policy"]
        self.assertIn("default-src 'self'", csp)
        self.assertNotIn("unsafe-inline", csp)
        self.assertNotIn("unsafe-eval", csp)
        self.assertEqual(root.headers["X-Frame-Options"], "DENY")
        self.assertEqual(root.headers["Referrer-Policy"], "no-referrer")
        # The page holds no data, and inline code would break the CSP.
        html = root.text
        self.assertNotRegex(html, r"<script(?![^>]*\bsrc=)")
        self.assertNotIn("<style", html)
        self.assertNotRegex(html, r'\sstyle="')

    def test_etag_revalidation(self):
        etag = self.c.session().get(self.c.base + "/app.js").headers["ETag"]
        for inm in (etag, "W/" + etag, '"x", ' + etag, "*"):
            st, hdr, body = self.get("/app.js", {"If-None-Match": inm})
            self.assertEqual(st, 304, inm)
            self.assertIsNone(body)
            self.assertEqual(hdr["ETag"], etag)
        st, _, body = self.get("/app.js", {"If-None-Match": '"0000"'})
        self.assertEqual(st, 200)
        self.assertTrue(body)
        # Different files, different tags.
        other = self.c.session().get(self.c.base + "/app.css")
        self.assertNotEqual(other.headers["ETag"], etag)

    def test_head_and_methods(self):
        r = self.c.session().head(self.c.base + "/app.css")
        self.assertEqual(r.status_code, 200)
        self.assertEqual(r.content, b"")
        self.assertEqual(r.headers["Content-Type"], TYPES["css"])
        st, hdr, body = self.get("/", method="POST")
        self.assertError((st, hdr, body), 405, "method_not_allowed")
        self.assertEqual(hdr["Allow"], "GET, HEAD")

    def test_no_shadowing(self):
        for path in ("/nope.html", "/static/index.html", "/index.html/x",
                     "/..%2Findex.html", "/v1/index.html"):
            st, hdr, body = self.get(path)
            self.assertIn(st, (401, 404), path)
        # The API still wants its token.
        self.assertEqual(self.get("/v1/stats")[0], 401)


if __name__ == "__main__":
    H.main()
