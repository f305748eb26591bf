"""A repository URL as covsweep hands it to git: credentials taken out of it, kept apart, never shown."""

from __future__ import annotations

import re
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from pydantic import BaseModel, Field, SecretStr

from tasks.core.errors import InputError
from tasks.core.names import GIT_TOKEN_BLOCK
from tasks.core.settings import Settings

URL_SCHEMES = ("https", "http", "ssh", "git", "file")
# scp-like syntax `user@host:path`; git also takes `host:path`, but that is a local path's spelling too.
SCP_LIKE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._~-]*@[A-Za-z0-9][A-Za-z0-9.-]*:(?!//)")  # never an option
# Any URL inside a line of text, for scrubbing what git prints.
URL_IN_TEXT = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
# Forges take any user name with a token over HTTPS; GitHub documents this one.
TOKEN_USERNAME = "x-access-token"


class Credentials(BaseModel):
    """What git answers when an HTTP(S) server asks who is there; only ever passed through the environment."""

    username: str = Field(repr=False)  # it may be the token itself
    password: SecretStr
    secret_username: bool = False  # `https://TOKEN@host`: the user name is the token

    def secrets(self) -> list[str]:
        values = [self.password.get_secret_value()] + ([self.username] if self.secret_username else [])
        return [v for v in values if v]


class Remote(BaseModel):
    """A repository as git is given it: `url` carries no credentials; `credentials` None means whatever
    git already uses on this host (credential helpers, the SSH agent, ~/.git-credentials)."""

    url: str
    credentials: Credentials | None = None

    def secrets(self) -> list[str]:
        return self.credentials.secrets() if self.credentials else []


def is_repository_url(target: str) -> bool:
    """A TARGET that names a git repository rather than a path on this host."""
    scheme = target.split("://", 1)[0].lower() if "://" in target else ""
    return scheme in URL_SCHEMES or bool(SCP_LIKE.match(target))


def _split_userinfo(url: str) -> tuple[str, str | None, str | None]:
    """(url without user info, user, password), both unquoted; scp-like URLs keep their user: it is no secret."""
    if "://" not in url:
        return url, None, None
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None, None
    userinfo, host = parts.netloc.rsplit("@", 1)
    user, _, password = userinfo.partition(":")
    clean = urlunsplit(parts._replace(netloc=host))
    return clean, unquote(user) or None, unquote(password) if ":" in userinfo else None


def redact(url: str) -> str:
    """The URL without credentials: what the report's `source.repository` and every message show.
    An ssh URL keeps its user name (it selects the account, it is not a secret)."""
    clean, user, password = _split_userinfo(url)
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme == "ssh" and user and password is None:
        return url
    if scheme == "ssh" and user:
        return clean.replace("://", f"://{quote(user, safe='')}@", 1)
    return clean


def scrub(text: str, secrets: list[str]) -> str:
    """Text git printed, safe to log or raise: no URL's user info, no secret in any spelling."""
    text = URL_IN_TEXT.sub(lambda m: redact(m.group(0)), text)
    for secret in sorted(secrets, key=len, reverse=True):
        for spelling in {secret, quote(secret, safe=""), quote(secret)}:
            text = text.replace(spelling, "***")
    return text


def detach_secret(url: str) -> tuple[str, SecretStr | None]:
    """(the URL with no secret left in it, the secret it carried): a flow run's parameters are stored by
    the Prefect API, so the URL goes there and the secret reaches git as COVSWEEP_GIT_TOKEN instead.
    A user name that is no token stays: `resolve` answers with it."""
    clean, user, password = _split_userinfo(url)
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in ("https", "http") or not user:
        return url, None
    if password:
        return clean.replace("://", f"://{quote(user, safe='')}@", 1), SecretStr(password)
    return clean, SecretStr(user)


def _saved_token() -> SecretStr | None:
    """The Prefect Secret block `covsweep-git-token`, when there is one (blocks are optional)."""
    from prefect.blocks.system import Secret

    from blocks.saved import load_saved

    block = load_saved(Secret, GIT_TOKEN_BLOCK)
    return SecretStr(str(block.get())) if block is not None else None


def resolve(url: str, settings: Settings, load_block: bool = True) -> Remote:
    """The remote for `url`. A token comes from the URL, else COVSWEEP_GIT_TOKEN, else the Prefect Secret
    block `covsweep-git-token` (HTTP(S) only: ssh authenticates with keys, git:// and file:// not at all);
    with none of them, git's own credential helpers answer as they always do."""
    if not is_repository_url(url):
        raise InputError(f"{redact(url)} is not a repository URL ({', '.join(URL_SCHEMES)}:// or user@host:path)")
    clean, user, password = _split_userinfo(url)
    scheme = url.split("://", 1)[0].lower() if "://" in url else "ssh"
    if scheme == "ssh" and password:
        raise InputError(f"{redact(url)}: a password in an ssh URL is not supported; use an SSH key (ssh-agent)")
    if scheme not in ("https", "http"):
        return Remote(url=redact(url))
    if password:
        return Remote(url=clean, credentials=Credentials(username=user or TOKEN_USERNAME, password=SecretStr(password)))
    token = settings.git_token or (_saved_token() if load_block else None)
    if token is not None and token.get_secret_value():
        return Remote(url=clean, credentials=Credentials(username=user or TOKEN_USERNAME, password=token))
    if user:  # `https://TOKEN@host/repo`, as GitHub and GitLab accept it
        return Remote(url=clean, credentials=Credentials(username=user, password=SecretStr(""), secret_username=True))
    return Remote(url=clean)
