"""``hookbird api`` run as the CLI against the fake Moneybird and a real Redis."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
import redis
from cryptography.fernet import Fernet

from hookbird import devstate
from hookbird.cli import main
from hookbird.moneybird.budget import PREFIX
from hookbird.moneybird.credentials import Credential, CredentialStore
from hookbird.moneybird.oauth import token_key
from tests.fake_moneybird import TOKEN, FakeMoneybird


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, redis_url: str, fake: FakeMoneybird) -> None:
    values = {
        "REDIS_URL": redis_url,
        "MONEYBIRD_API_TOKEN": TOKEN,
        "MONEYBIRD_API_URL": fake.api_url,
        "HOOKBIRD_LOG_FORMAT": "json",
        "HOOKBIRD_LOG_LEVEL": "warning",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("HOOKBIRD_SECRET_KEY", raising=False)
    monkeypatch.chdir("/")  # no stray .env, no dev


def api(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["api", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_get_fills_the_administration_and_prints_json(
    env: None, fake: FakeMoneybird, admin_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """{administration_id} is filled in, .json added, the answer printed as JSON."""
    made = fake.add("contacts", {"company_name": "Vogel B.V."})
    code, out, err = api(
        capsys, "GET", "/{administration_id}/contacts/" + made["id"], "--administration", admin_id
    )
    assert code == 0, err
    assert json.loads(out)["company_name"] == "Vogel B.V."
    assert fake.requests[-1].path == f"/{admin_id}/contacts/{made['id']}.json"


def test_paginate_prints_every_page_as_one_array(
    env: None, fake: FakeMoneybird, admin_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--paginate follows rel="next" over 3 pages and prints one array of 250."""
    made = [fake.add("contacts", {"company_name": f"C{n}"}) for n in range(250)]
    code, out, err = api(
        capsys, "get", "/{administration_id}/contacts", "-A", admin_id, "--paginate"
    )
    assert code == 0, err
    assert [c["id"] for c in json.loads(out)] == [c["id"] for c in made]
    assert fake.count("GET", "/contacts.json") == 3


def test_fields_are_the_query_of_a_get_and_filter_fields_a_filter(
    env: None, fake: FakeMoneybird, admin_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """-f on a GET is the query; filter[...] fields become Moneybird's filter string."""
    code, _, err = api(
        capsys,
        "GET",
        "/{administration_id}/sales_invoices",
        "-A",
        admin_id,
        "-f",
        "filter[state][]=open",
        "-f",
        "filter[state][]=late",
        "-f",
        "filter[period]=prev_year",
        "-f",
        "per_page=5",
    )
    assert code == 0, err
    assert fake.requests[-1].params == {
        "filter": "state:open|late,period:prev_year",
        "per_page": "5",
    }


def test_fields_of_a_post_are_its_wrapped_body(
    env: None, fake: FakeMoneybird, admin_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """-f key[sub]=v nests, -F types: the body Moneybird wants, and the created record out."""
    code, out, err = api(
        capsys,
        "POST",
        "/{administration_id}/contacts",
        "-A",
        admin_id,
        "-f",
        "contact[company_name]=Vogel B.V.",
        "-F",
        "contact[send_invoices_to_attention]=null",
        "-F",
        "contact[direct_debit]=true",
        "-F",
        "contact[customer_id]=42",
    )
    assert code == 0, err
    assert fake.requests[-1].body == {
        "contact": {
            "company_name": "Vogel B.V.",
            "send_invoices_to_attention": None,
            "direct_debit": True,
            "customer_id": 42,
        }
    }
    assert fake.record("contacts", json.loads(out)["id"]) is not None


def test_input_file_is_the_body_and_fields_go_to_the_query(
    env: None,
    fake: FakeMoneybird,
    admin_id: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """--input sends the file as the body; fields then go to the query string."""
    made = fake.add("contacts", {"company_name": "Old"})
    body = tmp_path / "contact.json"
    body.write_text(json.dumps({"contact": {"company_name": "New"}}))
    code, out, err = api(
        capsys,
        "PATCH",
        f"/{{administration_id}}/contacts/{made['id']}",
        "-A",
        admin_id,
        "--input",
        str(body),
        "-f",
        "note=from-cli",
    )
    assert code == 0, err
    assert fake.requests[-1].body == {"contact": {"company_name": "New"}}
    assert fake.requests[-1].params == {"note": "from-cli"}
    assert json.loads(out)["company_name"] == "New"


def test_input_from_stdin(
    env: None,
    fake: FakeMoneybird,
    admin_id: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """--input - reads the body from standard input."""
    monkeypatch.setattr("sys.stdin", io.StringIO('{"contact": {"company_name": "Piped"}}'))
    code, out, err = api(
        capsys, "POST", "/{administration_id}/contacts", "-A", admin_id, "--input", "-"
    )
    assert code == 0, err
    assert json.loads(out)["company_name"] == "Piped"


def test_a_download_follows_the_redirect_to_the_file(
    env: None,
    fake: FakeMoneybird,
    admin_id: str,
    capfdbinary: pytest.CaptureFixture[bytes],
) -> None:
    """A binary answer (after Moneybird's redirect) goes to stdout as it came."""
    made = fake.add("sales_invoices", {"state": "open"})
    code = main(
        [
            "api",
            "GET",
            f"/{{administration_id}}/sales_invoices/{made['id']}/download_pdf",
            "-A",
            admin_id,
        ]
    )
    out, _ = capfdbinary.readouterr()
    assert code == 0
    assert out.startswith(b"%PDF-1.4 fake ")


def test_moneybird_errors_say_what_to_do(
    env: None, fake: FakeMoneybird, admin_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 404 exits 1 with the API path and a hint; Moneybird's error body is on stdout."""
    code, out, err = api(capsys, "GET", "/{administration_id}/contacts/1", "-A", admin_id)
    assert code == 1
    assert f"Moneybird answered 404 to GET /{admin_id}/contacts/1.json" in err
    assert "check the path and the ids in it" in err
    assert json.loads(out)["error"] == "record not found"


def test_a_wrong_token_gets_the_credentials_hint(
    env: None,
    admin_id: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """401: the same advice the other commands give, and the token is never printed."""
    monkeypatch.setenv("MONEYBIRD_API_TOKEN", "not-the-right-token-0123456")
    code, out, err = api(capsys, "GET", "/administrations")
    assert code == 1
    assert "check MONEYBIRD_API_TOKEN" in err
    assert "not-the-right-token-0123456" not in out + err


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["GET", "/{administration_id}/contacts"], "pass --administration ID"),
        (["POST", "/administrations", "--paginate"], "--paginate follows the pages of a GET"),
        (["GET", "/administrations", "-f", "novalue"], "a field is KEY=VALUE"),
        (["GET", "/administrations", "-f", "a[b]=1"], "nested"),
        (["GET", "/administrations", "-f", "a=1", "-f", "a=2"], "a second time"),
        (["GET", "/1/sales_invoices", "-f", "filter[period]=last_year"], "must be one of"),
        (["GET", "https://moneybird.com/api/v2/administrations"], "not a full URL"),
        (["POST", "/1/contacts", "--input", "/nonexistent/body.json"], "cannot read"),
    ],
)
def test_usage_errors_say_what_to_do(
    env: None,
    fake: FakeMoneybird,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    complaint: str,
) -> None:
    """Mistakes are refused with a message naming the fix, before anything is sent."""
    code, _, err = api(capsys, *argv)
    assert code == 1
    assert complaint in err
    assert fake.requests == []


def test_the_call_draws_from_the_shared_budget(
    env: None,
    fake: FakeMoneybird,
    redis_client: redis.Redis,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The request takes a slot of the token's budget in Redis, as a worker's would."""
    code, out, err = api(capsys, "GET", "/administrations")
    assert code == 0, err
    assert json.loads(out)[0]["id"]
    assert redis_client.zcard(f"{PREFIX}api:{token_key(TOKEN)}") == 1


def test_finds_the_hookbird_dev_of_its_folder(
    fake: FakeMoneybird,
    redis_url: str,
    redis_client: redis.Redis,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """Without REDIS_URL, in the folder of a running `hookbird dev`, it uses dev's Redis."""
    devstate.write(tmp_path / ".hookbird", devstate.DevState(pid=os.getpid(), redis_url=redis_url))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("HOOKBIRD_DATA_DIR", raising=False)
    monkeypatch.delenv("HOOKBIRD_SECRET_KEY", raising=False)
    monkeypatch.setenv("MONEYBIRD_API_TOKEN", TOKEN)
    monkeypatch.setenv("MONEYBIRD_API_URL", fake.api_url)
    code, _, err = api(capsys, "GET", "/administrations")
    assert code == 0, err
    assert redis_client.zcard(f"{PREFIX}api:{token_key(TOKEN)}") == 1


def test_an_administration_in_the_path_picks_its_stored_credentials(
    env: None,
    fake: FakeMoneybird,
    admin_id: str,
    redis_client: redis.Redis,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """/123/contacts without --administration uses administration 123's stored token."""
    key = Fernet.generate_key().decode()
    stored = "fake-stored-personal-token-0123"
    fake.tokens.add(stored)
    CredentialStore(redis_client, key).put(
        admin_id, Credential(access_token=stored, kind="personal")
    )
    monkeypatch.delenv("MONEYBIRD_API_TOKEN")
    monkeypatch.setenv("HOOKBIRD_SECRET_KEY", key)
    code, out, err = api(capsys, "GET", f"/{admin_id}/contacts")
    assert code == 0, err
    assert json.loads(out) == []
    assert stored not in out + err
