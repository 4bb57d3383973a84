"""The Milvus backend's own promises (its settings, escaping, scoring); the behaviour every
backend shares is in tests/test_backend_contract.py."""

from __future__ import annotations

import pytest

from caselink.config import load_settings
from caselink.errors import ConfigError


def test_backend_settings_come_from_the_environment_and_the_token_is_never_shown(tmp_path):
    s = load_settings(env={"CASELINK_BACKEND": "milvus", "CASELINK_BACKEND_URI": "http://10.0.0.5:19530",
                           "CASELINK_BACKEND_TOKEN": "root:s3cret"})
    assert (s.backend.kind, s.backend.uri, s.backend.secret()) == ("milvus", "http://10.0.0.5:19530", "root:s3cret")
    assert "s3cret" not in repr(s) and "s3cret" not in s.model_dump_json()
    secret = tmp_path / "token"
    secret.write_text("key-from-a-file\n", encoding="utf-8")
    assert load_settings(env={"CASELINK_BACKEND_TOKEN_FILE": str(secret)}).backend.secret() == "key-from-a-file"
    assert load_settings(env={}).backend.kind == "local"


@pytest.mark.parametrize("env, field", [({"CASELINK_BACKEND": "mongo"}, "backend.kind"),
                                        ({"CASELINK_BACKEND_COLLECTION": "a-b"}, "backend.collection"),
                                        ({"CASELINK_BACKEND_TOKEN": "x", "CASELINK_BACKEND_TOKEN_FILE": "/t"}, "backend")])
def test_bad_backend_settings_are_refused_naming_the_setting(env, field):
    with pytest.raises(ConfigError, match=f"setting '{field}'"):
        load_settings(env=env)
