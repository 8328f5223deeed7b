"""Settings for the e2e sites' processes: the test settings, with mail and notices from the env.

tests.settings keeps mail in memory, which a worker process cannot show a test; here EMAIL_URL
(the SMTP fake) and AGENTS_NOTICE_EMAIL are read again when given.
"""

import os

import environ

from tests.settings import *  # noqa: F403

_env = environ.Env()
if os.environ.get("EMAIL_URL"):
    vars().update(_env.email_url("EMAIL_URL"))
AGENTS_NOTICE_EMAIL = _env.bool("AGENTS_NOTICE_EMAIL", default=False)
