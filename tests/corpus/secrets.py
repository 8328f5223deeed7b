"""Secret shapes to plant in files, logs, tracebacks and emails: none may reach the model.

Each shape is the secret and a line that holds it the way real text does. The values are made
up (the right shape, the right checksums for card numbers), never real credentials.
"""

from __future__ import annotations

from dataclasses import dataclass

# Strings are assembled from parts so that the repository itself holds no secret-shaped literal.
_B64 = "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "Zq81TmXe"
_PEM_BODY = "MIIEowIBAAKCAQEA7vQ3kZ1yXwq9" + "Lr2xG8cBmQ0pT4nVhJw5sE6uYd3aKf"


@dataclass(frozen=True)
class Shape:
    name: str
    secret: str  # must not appear in anything sent to Claude
    line: str  # the secret in its natural surroundings


def _shape(name: str, secret: str, line: str) -> Shape:
    assert secret in line, name
    return Shape(name, secret, line)


SETTING_VALUE = "cfg" + "Vq7Lm2Xp9Rt4Wz8Ns1"  # a configured setting's value, no known prefix

SHAPES: list[Shape] = [
    _shape("aws access key id", k := "AKIA" + "QX7Z3B5N2M4K6J8H", f"aws_access_key_id = {k}"),
    _shape("aws secret in settings", _B64, f'AWS_SECRET_ACCESS_KEY = "{_B64}"'),
    _shape("aws secret in env", s := "Tk3v" + _B64[4:], f"export AWS_SECRET_ACCESS_KEY={s}"),
    _shape(
        "rsa private key",
        _PEM_BODY,
        "-----BEGIN RSA PRIVATE KEY-----\n" + _PEM_BODY + "\n-----END RSA PRIVATE KEY-----",
    ),
    _shape(
        "openssh private key",
        p := "b3BlbnNzaC1rZXktdjEAAAAA" + "BG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtz",
        "-----BEGIN OPENSSH PRIVATE KEY-----\n" + p + "\n-----END OPENSSH PRIVATE KEY-----",
    ),
    _shape(
        "jwt",
        j := "eyJhbGciOiJIUzI1NiJ9."
        + "eyJzdWIiOiJib2IiLCJyb2xlIjoic3RhZmYifQ.dozjgNryP4J3jVmNHl0w5N",
        f"session cookie jwt={j}",
    ),
    _shape(
        "stripe secret key", k := "sk_" + "live_51HqLx9Rt2Wz8Ns1Vq7Lm2Xp", f"stripe.api_key = '{k}'"
    ),
    _shape("stripe restricted key", k := "rk_" + "live_51HqLx9Rt2Wz8Ns1Qw3Er5", f"STRIPE={k}"),
    _shape("stripe webhook secret", k := "whsec_" + "Vq7Lm2Xp9Rt4Wz8Ns1Ab3Cd", f"signing: {k}"),
    _shape("github classic token", k := "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8", k),
    _shape("github fine-grained", k := "github_pat_" + "11ABCDEFG0" + "x" * 12 + "_Yz9", f"GH={k}"),
    _shape(
        "github oauth token", k := "gho_" + "Z9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4J3i2", f"token {k}"
    ),
    _shape("slack bot token", k := "xoxb-" + "123456789012-1234567890123-AbCdEfGhIjKlMnOp", k),
    _shape("slack user token", k := "xoxp-" + "123456789012-123456789012-98765-abcdef0123", k),
    _shape(
        "slack webhook url",
        k := "https://hooks.slack.com/services/" + "T0AB12CD3/B0EF45GH6/Xy9Zq81TmXeVq7Lm2Xp9Rt4W",
        f"SLACK_WEBHOOK = '{k}'",
    ),
    _shape("anthropic key", k := "sk-ant-" + "api03-Vq7Lm2Xp9Rt4Wz8Ns1Ab3Cd5Ef7Gh9", k),
    _shape(
        "openai key",
        k := "sk-proj-" + "Ab3Cd5Ef7Gh9Ij1Kl3Mn" + "T3BlbkFJ" + "Qr5St7Uv9Wx1Yz3Ab5Cd",
        f"OPENAI={k}",
    ),
    _shape(
        "database url", p := "pg-Pa55-w0rd", f"DATABASE_URL=postgres://shop:{p}@db.internal/shop"
    ),
    _shape("redis url", p := "r3dis-Pa55", f"CACHE = 'redis://cache:{p}@10.0.0.9:6379/0'"),
    _shape(
        "dict repr password", p := "hunter2-Xy9", f"locals: {{'user': 'bob', 'password': '{p}'}}"
    ),
    _shape("python password", p := "correct-horse-42", f'DB_PASSWORD = "{p}"'),
    _shape(
        "query string token", t := "q8Zt4Wv2Ns1Lm7Kp", f"GET /api/export?access_token={t}&page=2"
    ),
    _shape("query string api key", t := "9f86d081884c7d65", f"/v1/orders?user=7&api_key={t} 500"),
    _shape("bearer header", t := "Zq81TmXeVq7Lm2Xp9Rt4", f"Authorization: Bearer {t}"),
    _shape("basic header", t := "Ym9iOmh1bnRlcjItWHk5", f"Authorization: Basic {t}"),
    _shape("netrc", p := "n3trc-Secret", f"machine api.example.com login bob password {p}"),
    _shape("visa with spaces", c := "4242 4242 4242 4242", f"My card is {c}, exp 12/29"),
    _shape("mastercard with dashes", c := "5555-5555-5555-4444", f"card {c} please"),
    _shape("amex", c := "3782 822463 10005", f"Amex {c} was charged twice"),
    _shape("card digits", c := "4012888888881881", f"number {c} cvc 123"),
    _shape(
        "django secret key", k := "django-insecure-" + "7q#v2&l9x!p4w@z8n1s", f"SECRET_KEY = '{k}'"
    ),
    _shape("configured setting", SETTING_VALUE, f"retry with key {SETTING_VALUE} from the vault"),
    _shape("twilio key", k := "SK" + "0123456789abcdef0123456789abcdef", f"twilio: {k}"),
    _shape(
        "sendgrid key",
        k := "SG." + "Vq7Lm2Xp9Rt4Wz8Ns1Ab3C" + "." + "dE5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t0U1v2W3x4Y5",
        f"SENDGRID_API_KEY={k}",
    ),
    _shape(
        "npm token",
        k := "npm_" + "Ab3Cd5Ef7Gh9Ij1Kl3Mn5Op7Qr9St1Uv3Wx5",
        f"//registry/:_authToken={k}",
    ),
    _shape("gitlab token", k := "glpat-" + "Ab3Cd5Ef7Gh9Ij1Kl3Mn", f"CI_TOKEN: {k}"),
    _shape("service token env", t := "Zx9Kq2Lm7Np4Rs8Tv1", f"PAYMENTS_SERVICE_TOKEN={t}"),
    _shape("yaml secret", s := "y4ml-S3cret-V4lue", f"  client_secret: {s}"),
    _shape("json secret", s := "j50n-S3cret-V4lue", f'{{"client_secret": "{s}", "id": 7}}'),
    _shape("api key header", k := "8f14e45fceea167a5a36dedd4bea2543", f"X-Api-Key: {k}"),
    _shape("session cookie", s := "k2v9x7q1z8m3n4b5", f"Cookie: sessionid={s}; theme=dark"),
    _shape("password in prose", p := "Tr0ub4dor&3", f"My password is {p} if you need to log in"),
    _shape("ftp url", p := "ftpPa55x", f"fetched ftp://deploy:{p}@files.example.com/build.tgz"),
]

# Lines around the secrets that must still reach the model as they are.
READABLE = [
    "def charge_customer(order, amount_cents):",
    "    return gateway.charge(order.customer_id, amount_cents)",
    "TIMEOUT_SECONDS = 30",
    "cache_key = f'order:{order.pk}'",
    "id = models.BigAutoField(primary_key=True)",
    "GET /api/orders/1234 HTTP/1.1",
    "Order 10042 was refunded 4000 cents on 2025-03-14.",
]


def planted() -> str:
    """Every shape's line, with readable lines between them."""
    lines: list[str] = []
    for index, shape in enumerate(SHAPES):
        lines.append(READABLE[index % len(READABLE)])
        lines.append(shape.line)
    return "\n".join(lines)
