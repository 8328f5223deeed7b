"""The review page's diff: coloured by kind, code highlighted, everything escaped."""

from sre.diffs import diff_lines, diff_styles

DIFF = """diff --git a/app/api.py b/app/api.py
--- a/app/api.py
+++ b/app/api.py
@@ -5,2 +5,2 @@ def handler(request):
     payload = json.loads(request.body)
-    profile = payload["user_profile"]
+    profile = payload.get("user_profile", {})  # <script>alert(1)</script>
"""


def test_lines_are_classified_and_python_is_highlighted():
    lines = diff_lines(DIFF)
    assert [kind for kind, _ in lines] == ["hunk", "hunk", "hunk", "hunk", "ctx", "del", "add"]
    added = str(lines[-1][1])
    assert added.startswith("+") and 'class="hl-' in added  # highlighted as Python
    assert "<script>" not in added and "&lt;script&gt;" in added
    assert ".cs-diff" in diff_styles()


def test_unknown_file_types_are_plain_escaped_text():
    lines = diff_lines("+++ b/notes.unknownext\n+<b>bold</b>\n")
    assert str(lines[1][1]) == "+&lt;b&gt;bold&lt;/b&gt;"
