#!/usr/bin/env python3
"""Generates the held-out scan corpus: realistic agent state with live-looking credentials of
many kinds, in the contexts agents write them, and look-alikes that are not secrets.

    gen-agent-corpus.py [OUT_DIR]        (default: tests/fixtures/agent-corpus)

Writes OUT_DIR/files/** (the state to scan) and OUT_DIR/labels.json. Deterministic (fixed
seed): running it again rewrites the same bytes.

Held out: every token below is built from its provider's *published* format (prefix, length,
alphabet, structure as documented by the provider or seen in its own docs and SDKs), never
from agentbak's rule regexes, so the test that reads this corpus measures the rules instead of
restating them. All values are random strings made here; none is a real credential.

labels.json holds one record per labelled line range:
    {"file": "home/.env", "line": 12, "end": 12, "kind": "groq", "class": "live"}
class is "live" (a secret in plain or escaped text), "base64" (a secret only visible after
decoding base64), or "lookalike" (must not be flagged). A finding on a line no label covers
is a false positive too.
"""

import base64
import json
import os
import random
import string
import sys
import textwrap
import zlib

SEED = 0xA6E7_2026_1204
rng = random.Random(SEED)

LOWER = string.ascii_lowercase
UPPER = string.ascii_uppercase
DIGITS = string.digits
AN = string.ascii_letters + string.digits
URLSAFE = AN + "-_"
HEX = "0123456789abcdef"
B64 = AN + "+/"
BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def r(n, alphabet=AN):
    return "".join(rng.choice(alphabet) for _ in range(n))


def b64(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode()


def b64url(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def base62(n, width):
    out = ""
    while n:
        n, d = divmod(n, 62)
        out = AN_ORDERED[d] + out
    return out.rjust(width, "0")


AN_ORDERED = string.digits + string.ascii_uppercase + string.ascii_lowercase


def github(prefix):
    # GitHub's published token format: prefix, 30 random base62 characters, then the CRC32
    # of those 30 in base62 over 6 characters (github.blog, "Behind GitHub's new
    # authentication token formats", 2021).
    body = r(30)
    return prefix + body + base62(zlib.crc32(body.encode()), 6)


def npm():
    # npm granular/automation tokens use the same scheme as GitHub's: npm_ + 30 + CRC32.
    body = r(30)
    return "npm_" + body + base62(zlib.crc32(body.encode()), 6)


def jwt(payload, header=None):
    header = header or {"alg": "HS256", "typ": "JWT"}
    h = b64url(json.dumps(header, separators=(",", ":")))
    p = b64url(json.dumps(payload, separators=(",", ":")))
    return f"{h}.{p}.{b64url(bytes(rng.getrandbits(8) for _ in range(32)))}"


def pem_body(nbytes, lead=b""):
    raw = lead + bytes(rng.getrandbits(8) for _ in range(nbytes - len(lead)))
    return textwrap.wrap(b64(raw), 64)


def pem(label, nbytes, lead=b"", headers=None):
    lines = [f"-----BEGIN {label}-----"]
    if headers:
        lines += headers + [""]
    lines += pem_body(nbytes, lead)
    lines.append(f"-----END {label}-----")
    return "\n".join(lines)


def openssh_key():
    lead = b"openssh-key-v1\x00\x00\x00\x00\x04none\x00\x00\x00\x04none\x00\x00\x00\x00\x00\x00\x00\x01"
    lines = ["-----BEGIN OPENSSH PRIVATE KEY-----"]
    lines += textwrap.wrap(b64(lead + bytes(rng.getrandbits(8) for _ in range(330))), 70)
    lines.append("-----END OPENSSH PRIVATE KEY-----")
    return "\n".join(lines)


def pgp_key():
    lines = ["-----BEGIN PGP PRIVATE KEY BLOCK-----", "", *textwrap.wrap(
        b64(b"\x95\x03\xc6\x04" + bytes(rng.getrandbits(8) for _ in range(600))), 64),
        "=" + r(4, B64), "-----END PGP PRIVATE KEY BLOCK-----"]
    return "\n".join(lines)


def gcp_service_account():
    project = f"agent-{r(6, LOWER)}-{r(6, DIGITS)}"
    return {
        "type": "service_account",
        "project_id": project,
        "private_key_id": r(40, HEX),
        "private_key": pem("PRIVATE KEY", 1216, b"\x30\x82\x04\xbc\x02\x01\x00") + "\n",
        "client_email": f"agent-runner@{project}.iam.gserviceaccount.com",
        "client_id": r(21, DIGITS),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": "https://oauth2.googleapis.com/token",
    }


def supabase_jwt():
    return jwt({"iss": "supabase", "ref": r(20, LOWER), "role": "service_role",
                "iat": 1718000000 + rng.randrange(10**7), "exp": 2033576000 + rng.randrange(10**7)})


def pinecone():
    return f"pcsk_{r(6)}_{r(63)}"


def password(n=18):
    return r(n, AN + "!#%^*-_.~")


def atlassian():
    body = r(171, URLSAFE)
    return "ATATT3xFfGF0" + body + "=" + r(8, HEX.upper())


def pypi():
    # A macaroon: "pypi-" + base64url of a serialized macaroon whose location is pypi.org.
    mac = b"\x02\x01\x08pypi.org\x02" + bytes(rng.getrandbits(8) for _ in range(100))
    return "pypi-" + b64url(mac)


# (kind, variable name, generator, shape). Shapes: token (one line), url, pem (multi-line),
# sa (a GCP service-account JSON document).
KINDS = [
    ("openai-project", "OPENAI_API_KEY", lambda: "sk-proj-" + r(74, URLSAFE) + "T3BlbkFJ" + r(74, URLSAFE), "token"),
    ("openai-legacy", "OPENAI_API_KEY", lambda: "sk-" + r(20) + "T3BlbkFJ" + r(20), "token"),
    ("openai-svcacct", "OPENAI_API_KEY", lambda: "sk-svcacct-" + r(74, URLSAFE) + "T3BlbkFJ" + r(74, URLSAFE), "token"),
    ("anthropic", "ANTHROPIC_API_KEY", lambda: "sk-ant-api03-" + r(93, URLSAFE) + "AA", "token"),
    ("anthropic-oauth", "CLAUDE_CODE_OAUTH_TOKEN", lambda: "sk-ant-oat01-" + r(93, URLSAFE) + "AA", "token"),
    ("anthropic-refresh", "ANTHROPIC_REFRESH_TOKEN", lambda: "sk-ant-ort01-" + r(93, URLSAFE) + "AA", "token"),
    ("openrouter", "OPENROUTER_API_KEY", lambda: "sk-or-v1-" + r(64, HEX), "token"),
    ("groq", "GROQ_API_KEY", lambda: "gsk_" + r(52), "token"),
    ("xai", "XAI_API_KEY", lambda: "xai-" + r(80), "token"),
    ("perplexity", "PERPLEXITY_API_KEY", lambda: "pplx-" + r(48), "token"),
    ("huggingface", "HF_TOKEN", lambda: "hf_" + r(34), "token"),
    ("replicate", "REPLICATE_API_TOKEN", lambda: "r8_" + r(37), "token"),
    ("langsmith", "LANGSMITH_API_KEY", lambda: f"lsv2_pt_{r(32, HEX)}_{r(10, HEX)}", "token"),
    ("tavily", "TAVILY_API_KEY", lambda: "tvly-" + r(32), "token"),
    ("tavily-dev", "TAVILY_API_KEY", lambda: "tvly-dev-" + r(32), "token"),
    ("pinecone", "PINECONE_API_KEY", pinecone, "token"),
    ("google-ai", "GEMINI_API_KEY", lambda: "AIza" + r(35, URLSAFE), "token"),
    ("fireworks", "FIREWORKS_API_KEY", lambda: "fw_" + r(24), "token"),
    ("elevenlabs", "ELEVENLABS_API_KEY", lambda: "sk_" + r(48, HEX), "token"),
    ("deepseek", "DEEPSEEK_API_KEY", lambda: "sk-" + r(32, HEX), "token"),
    ("mistral", "MISTRAL_API_KEY", lambda: r(32), "token"),
    ("cohere", "COHERE_API_KEY", lambda: r(40), "token"),
    ("azure-openai", "AZURE_OPENAI_API_KEY", lambda: r(32, HEX), "token"),
    ("github-pat", "GITHUB_TOKEN", lambda: github("ghp_"), "token"),
    ("github-oauth", "GH_TOKEN", lambda: github("gho_"), "token"),
    ("github-app", "GITHUB_APP_TOKEN", lambda: github("ghs_"), "token"),
    ("github-user-to-server", "GH_TOKEN", lambda: github("ghu_"), "token"),
    ("github-fine-grained", "GITHUB_PAT", lambda: "github_pat_" + r(22) + "_" + r(59), "token"),
    ("gitlab", "GITLAB_TOKEN", lambda: "glpat-" + r(20, URLSAFE), "token"),
    ("npm", "NPM_TOKEN", npm, "token"),
    ("pypi", "TWINE_PASSWORD", pypi, "token"),
    ("dockerhub", "DOCKERHUB_TOKEN", lambda: "dckr_pat_" + r(27, URLSAFE), "token"),
    ("digitalocean", "DIGITALOCEAN_ACCESS_TOKEN", lambda: "dop_v1_" + r(64, HEX), "token"),
    ("datadog-api", "DD_API_KEY", lambda: r(32, HEX), "token"),
    ("datadog-app", "DD_APP_KEY", lambda: r(40, HEX), "token"),
    ("datadog-app-long", "DD_APPLICATION_KEY", lambda: r(40, HEX), "token"),
    ("sentry-dsn", "SENTRY_DSN", lambda: f"https://{r(32, HEX)}@o{r(6, DIGITS)}.ingest.us.sentry.io/{r(7, DIGITS)}", "url"),
    ("sentry-token", "SENTRY_AUTH_TOKEN", lambda: "sntrys_" + b64url(json.dumps({"iat": 1718000000.5, "url": "https://sentry.io", "region_url": "https://us.sentry.io", "org": "acme"})) + "_" + r(43, URLSAFE), "token"),
    ("discord-bot", "DISCORD_BOT_TOKEN", lambda: b64url(r(18, DIGITS)) + "." + r(6, URLSAFE) + "." + r(38, URLSAFE), "token"),
    ("discord-webhook", "DISCORD_WEBHOOK_URL", lambda: f"https://discord.com/api/webhooks/{r(19, DIGITS)}/{r(68, URLSAFE)}", "url"),
    ("telegram", "TELEGRAM_BOT_TOKEN", lambda: f"{r(10, DIGITS)}:AA{r(33, URLSAFE)}", "token"),
    ("slack-bot", "SLACK_BOT_TOKEN", lambda: f"xoxb-{r(12, DIGITS)}-{r(13, DIGITS)}-{r(24)}", "token"),
    ("slack-user", "SLACK_USER_TOKEN", lambda: f"xoxp-{r(12, DIGITS)}-{r(12, DIGITS)}-{r(13, DIGITS)}-{r(32, HEX)}", "token"),
    ("slack-webhook", "SLACK_WEBHOOK_URL", lambda: f"https://hooks.slack.com/services/T{r(10, UPPER + DIGITS)}/B{r(10, UPPER + DIGITS)}/{r(24)}", "url"),
    ("shopify", "SHOPIFY_ACCESS_TOKEN", lambda: "shpat_" + r(32, HEX), "token"),
    ("atlassian", "JIRA_API_TOKEN", atlassian, "token"),
    ("linear", "LINEAR_API_KEY", lambda: "lin_api_" + r(40), "token"),
    ("notion", "NOTION_TOKEN", lambda: "ntn_" + r(11, DIGITS) + r(35), "token"),
    ("notion-legacy", "NOTION_API_KEY", lambda: "secret_" + r(43), "token"),
    ("supabase-service-role", "SUPABASE_SERVICE_ROLE_KEY", supabase_jwt, "token"),
    ("supabase-access", "SUPABASE_ACCESS_TOKEN", lambda: "sbp_" + r(40, HEX), "token"),
    ("gcp-service-account", "GOOGLE_APPLICATION_CREDENTIALS_JSON", gcp_service_account, "sa"),
    ("google-oauth-secret", "GOOGLE_CLIENT_SECRET", lambda: "GOCSPX-" + r(28, URLSAFE), "token"),
    ("google-refresh", "GOOGLE_REFRESH_TOKEN", lambda: "1//0" + r(2, UPPER) + r(99, URLSAFE), "token"),
    ("azure-storage", "AZURE_STORAGE_CONNECTION_STRING", lambda: f"DefaultEndpointsProtocol=https;AccountName=agent{r(8, LOWER)};AccountKey={b64(bytes(rng.getrandbits(8) for _ in range(64)))};EndpointSuffix=core.windows.net", "url"),
    ("azure-servicebus", "AZURE_SERVICEBUS_CONNECTION_STRING", lambda: f"Endpoint=sb://agent-{r(6, LOWER)}.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey={b64(bytes(rng.getrandbits(8) for _ in range(32)))}", "url"),
    ("azure-client-secret", "AZURE_CLIENT_SECRET", lambda: r(3, AN) + r(1, DIGITS) + "Q~" + r(34, AN + "_~.-"), "token"),
    ("aws-access-key", "AWS_ACCESS_KEY_ID", lambda: "AKIA" + r(16, UPPER + "234567"), "token"),
    ("aws-secret-key", "AWS_SECRET_ACCESS_KEY", lambda: r(40, B64), "token"),
    ("stripe", "STRIPE_SECRET_KEY", lambda: "sk_live_51" + r(97), "token"),
    ("stripe-webhook", "STRIPE_WEBHOOK_SECRET", lambda: "whsec_" + r(32), "token"),
    ("sendgrid", "SENDGRID_API_KEY", lambda: f"SG.{r(22, URLSAFE)}.{r(43, URLSAFE)}", "token"),
    ("twilio-auth", "TWILIO_AUTH_TOKEN", lambda: r(32, HEX), "token"),
    ("cloudflare", "CLOUDFLARE_API_TOKEN", lambda: r(40, URLSAFE), "token"),
    ("vault-service", "VAULT_TOKEN", lambda: "hvs." + r(24), "token"),
    ("vault-service-long", "VAULT_TOKEN", lambda: "hvs.CAESI" + r(100, URLSAFE), "token"),
    ("vault-batch", "VAULT_TOKEN", lambda: "hvb.AAAAAQ" + r(130, URLSAFE), "token"),
    ("age", "SOPS_AGE_KEY", lambda: "AGE-SECRET-KEY-1" + r(58, BECH32.upper()), "token"),
    ("rsa-key", "SSH_PRIVATE_KEY", lambda: pem("RSA PRIVATE KEY", 1190, b"\x30\x82\x04\xa2\x02\x01\x00"), "pem"),
    ("ec-key", "EC_PRIVATE_KEY", lambda: pem("EC PRIVATE KEY", 121, b"\x30\x77\x02\x01\x01\x04\x20"), "pem"),
    ("pkcs8-key", "JWT_SIGNING_KEY", lambda: pem("PRIVATE KEY", 1216, b"\x30\x82\x04\xbc\x02\x01\x00"), "pem"),
    ("openssh-key", "DEPLOY_KEY", openssh_key, "pem"),
    ("pgp-key", "GPG_PRIVATE_KEY", pgp_key, "pem"),
    ("postgres-url", "DATABASE_URL", lambda: f"postgresql://agent:{password(20)}@db.internal:5432/agent", "url"),
    ("mysql-url", "MYSQL_URL", lambda: f"mysql://root:{password(16)}@mysql.svc.cluster.local:3306/app", "url"),
    ("mongodb-url", "MONGODB_URI", lambda: f"mongodb+srv://agent:{r(16)}@cluster0.{r(5, LOWER)}.mongodb.net/?retryWrites=true&w=majority", "url"),
    ("redis-url", "REDIS_URL", lambda: f"rediss://default:{r(32)}@redis-{r(5, DIGITS)}.c1.us-east-1.ec2.cloud.redislabs.com:{r(5, DIGITS)}", "url"),
    ("amqp-url", "CELERY_BROKER_URL", lambda: f"amqps://agent:{r(24)}@b-{r(8, HEX)}.mq.us-east-1.amazonaws.com:5671", "url"),
    ("db-password", "POSTGRES_PASSWORD", lambda: password(20), "token"),
    ("jwt-secret", "JWT_SECRET", lambda: r(48, URLSAFE), "token"),
]

# ---------------------------------------------------------------------------------------
# Rendering a secret in a context: each returns a list of lines and the index (in that list)
# of the first and last line that hold the secret.


def one_line(value):
    """A secret as it appears on one line of a text format (PEM newlines as \\n)."""
    if isinstance(value, dict):
        return json.dumps(value)
    return value.replace("\n", "\\n")


def ctx_dotenv(name, value, shape):
    if shape == "sa":
        return [f"{name}='{json.dumps(value)}'"], 0, 0
    if shape == "pem":
        lines = value.split("\n")
        return [f'{name}="{lines[0]}', *lines[1:-1], f'{lines[-1]}"'], 0, len(lines) - 1
    return [f"{name}={value}"], 0, 0


def ctx_declare(name, value, shape):
    if shape == "sa":
        return [f"declare -x {name}='{json.dumps(value)}'"], 0, 0
    if shape == "pem":
        lines = value.split("\n")
        return [f'declare -x {name}="{lines[0]}', *lines[1:-1], f'{lines[-1]}"'], 0, len(lines) - 1
    return [f'declare -x {name}="{value}"'], 0, 0


def ctx_yaml(name, value, shape):
    key = name.lower()
    if shape == "sa":
        lines = json.dumps(value, indent=2).split("\n")
        return [f"  {key}: |", *["    " + l for l in lines]], 1, len(lines)
    if shape == "pem":
        lines = value.split("\n")
        return [f"  {key}: |", *["    " + l for l in lines]], 1, len(lines)
    return [f"  {key}: \"{value}\""], 0, 0


def ctx_mcp(name, value, shape):
    """An MCP server's env block in a JSON config (one entry per line, JSON-escaped)."""
    v = json.dumps(value) if shape == "sa" else value
    return [f"        {json.dumps(name)}: {json.dumps(v)},"], 0, 0


def ctx_toml(name, value, shape):
    v = json.dumps(value) if shape == "sa" else value
    return [f"{name} = {json.dumps(v)}"], 0, 0


def tool_text(name, value, shape):
    if shape == "sa":
        return f"$ cat key.json\n{json.dumps(value, indent=2)}\n"
    if shape == "pem":
        return f"$ cat ~/.ssh/deploy\n{value}\n"
    return f"$ env | grep {name.split('_')[0]}\n{name}={value}\nPATH=/usr/local/bin:/usr/bin\n"


def ctx_claude(name, value, shape):
    """A Claude Code transcript line: the tool output JSON-escaped once."""
    rec = {"parentUuid": None, "type": "user", "sessionId": SESSION,
           "message": {"role": "user", "content": [{"type": "tool_result",
                       "tool_use_id": "toolu_01" + r(22), "content": tool_text(name, value, shape)}]}}
    return [json.dumps(rec, separators=(",", ":"))], 0, 0


def ctx_codex(name, value, shape):
    """A Codex rollout line: the tool output is a JSON document inside a JSON string."""
    inner = json.dumps({"output": tool_text(name, value, shape), "metadata": {"exit_code": 0, "duration_seconds": 0.1}})
    rec = {"timestamp": "2026-06-01T09:13:0%dZ" % rng.randrange(10), "type": "response_item",
           "payload": {"type": "function_call_output", "call_id": "call_" + r(24), "output": inner}}
    return [json.dumps(rec, separators=(",", ":"))], 0, 0


def ctx_curl(name, value, shape):
    if shape == "url":
        return [f"* Trying {value} ..."], 0, 0
    if shape in ("pem", "sa"):
        return ctx_dotenv(name, value, shape)
    header = {"ANTHROPIC_API_KEY": "x-api-key", "DD_API_KEY": "DD-API-KEY", "DD_APP_KEY": "DD-APPLICATION-KEY",
              "DD_APPLICATION_KEY": "DD-APPLICATION-KEY", "VAULT_TOKEN": "X-Vault-Token"}.get(name)
    if header:
        return [f"> {header}: {value}"], 0, 0
    return [f"> Authorization: Bearer {value}"], 0, 0


def ctx_history(name, value, shape):
    if shape in ("pem", "sa"):
        return ctx_declare(name, value, shape)
    return [f"export {name}='{value}'"], 0, 0


def ctx_k8s_string(name, value, shape):
    key = name.lower().replace("_", "-")
    if shape in ("pem", "sa"):
        text = json.dumps(value, indent=2) if shape == "sa" else value
        lines = text.split("\n")
        return [f"  {key}: |", *["    " + l for l in lines]], 1, len(lines)
    return [f"  {key}: {json.dumps(value)}"], 0, 0


def ctx_markdown(name, value, shape):
    if shape in ("pem", "sa"):
        text = json.dumps(value, indent=2) if shape == "sa" else value
        lines = text.split("\n")
        return ["```", *lines, "```"], 1, len(lines)
    return [f"- rotated `{name}` today, new value `{value}`"], 0, 0


CONTEXTS = {
    "dotenv": ("home/project/.env", ctx_dotenv),
    "declare": ("home/.agent/env-dump.txt", ctx_declare),
    "yaml": ("home/litellm/config.yaml", ctx_yaml),
    "mcp": ("home/.cursor/mcp.json", ctx_mcp),
    "toml": ("home/.codex/config.toml", ctx_toml),
    "claude": ("home/.claude/projects/-home-agent-app/session.jsonl", ctx_claude),
    "codex": ("home/.codex/sessions/2026/06/01/rollout-2026-06-01T09-13-00.jsonl", ctx_codex),
    "curl": ("home/logs/curl-verbose.log", ctx_curl),
    "history": ("home/.bash_history", ctx_history),
    "k8s": ("home/deploy/secret.yaml", ctx_k8s_string),
    "markdown": ("home/notes/ops.md", ctx_markdown),
}
CONTEXT_ORDER = list(CONTEXTS)
SESSION = "7d81" + r(4, HEX) + "-" + r(4, HEX) + "-4" + r(3, HEX) + "-a" + r(3, HEX) + "-" + r(12, HEX)

# ---------------------------------------------------------------------------------------
# Look-alikes: (label, line). Each is one line that no scanner should flag.

JWT_IO = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ"
          ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c")


def lookalikes():
    u = lambda: f"{r(8, HEX)}-{r(4, HEX)}-4{r(3, HEX)}-a{r(3, HEX)}-{r(12, HEX)}"
    ulid = lambda: r(1, "0123456") + r(25, "0123456789ABCDEFGHJKMNPQRSTVWXYZ")
    return [
        # environment and secret-store references
        ("env-ref-python", 'api_key = os.environ["OPENAI_API_KEY"]'),
        ("env-ref-getenv", 'token = os.getenv("GITHUB_TOKEN")'),
        ("env-ref-getenv-default", 'password = os.environ.get("DB_PASSWORD", "")'),
        ("env-ref-node", "const apiKey = process.env.ANTHROPIC_API_KEY;"),
        ("env-ref-node2", "  token: process.env.SLACK_BOT_TOKEN,"),
        ("env-ref-vite", "const key = import.meta.env.VITE_SUPABASE_ANON_KEY"),
        ("env-ref-litellm", "      api_key: os.environ/OPENAI_API_KEY"),
        ("env-ref-litellm2", "      api_key: os.environ/AZURE_API_KEY_EU"),
        ("env-ref-shell", 'export GH_TOKEN="${GITHUB_TOKEN}"'),
        ("env-ref-shell2", "TOKEN=$GITHUB_TOKEN"),
        ("env-ref-shell3", 'token="$(gh auth token)"'),
        ("env-ref-compose", "      - POSTGRES_PASSWORD=${POSTGRES_PASSWORD:?required}"),
        ("env-ref-gha", "          token: ${{ secrets.GITHUB_TOKEN }}"),
        ("env-ref-helm", "  password: {{ .Values.postgresql.auth.password | quote }}"),
        ("env-ref-ruby", "api_key = ENV.fetch('STRIPE_API_KEY')"),
        ("env-ref-rust", 'let token = std::env::var("HF_TOKEN")?;'),
        ("env-ref-go", 'apiKey := os.Getenv("GROQ_API_KEY")'),
        ("env-ref-env-prefix", '    "token": "env:GITHUB_TOKEN",'),
        ("env-ref-mcp", '        "GITHUB_PERSONAL_ACCESS_TOKEN": "${input:github_token}",'),
        ("kwarg", "client = OpenAI(api_key=api_key, base_url=base_url)"),
        ("kwarg2", "    return Client(token=token, timeout=30)"),
        ("kwarg3", "    db.connect(password=self.password, user=self.user)"),
        ("kwarg4", "session = boto3.Session(aws_secret_access_key=secret_access_key)"),
        ("kwarg5", "    api_key=settings.OPENAI_API_KEY,"),
        ("kwarg6", "    secret=config.webhook_secret,"),
        ("kwarg7", "headers = {'Authorization': f'Bearer {access_token}'}"),
        ("kwarg8", "    token = get_installation_token(app_id, private_key_path)"),
        ("attr", "self.api_key = api_key or os.environ.get('TAVILY_API_KEY')"),
        ("vault-ref", '    "api_key": "vault:secret/data/agents/kevin#openai_api_key",'),
        ("vault-ref2", "  password: vault:kv/data/db#password"),
        ("vault-ref3", "DB_PASSWORD=vault:database/creds/readonly#password"),
        ("arn-ref", '    "secret": "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/openai-Ab12Cd",'),
        ("arn-ref2", "  token: arn:aws:ssm:eu-west-1:123456789012:parameter/agent/slack-token"),
        ("op-ref", "OPENAI_API_KEY=op://Private/OpenAI/credential"),
        ("op-ref2", '        "GITHUB_TOKEN": "op://dev/github-pat/token",'),
        ("gcp-ref", "  api_key: projects/agent-prod/secrets/openai-key/versions/latest"),
        ("azkv-ref", "  password: '@Microsoft.KeyVault(SecretUri=https://agentkv.vault.azure.net/secrets/db-password/)'"),
        ("k8s-ref", "            secretKeyRef: {name: openai, key: api-key}"),
        ("sops", "  api_key: ENC[AES256_GCM,data:" + r(40, B64) + ",iv:" + r(43, B64) + "=,tag:" + r(22, B64) + "==,type:str]"),
        ("agentbak-handle", '    "secret": "vault:agents/kevin/github#token",'),
        ("agentbak-handle2", '{"file": "state/config.toml", "handle": "local:agents/kevin/captured#github-pat-3f9a0c12d4e5"}'),
        ("agentbak-placeholder", "GITHUB_TOKEN=+agentbak:vault:agents/kevin/github#token+"),
        ("agentbak-regex", '      "regex": "\\\\bGITHUB_TOKEN=([A-Za-z0-9_]+)",'),
        ("agentbak-regex2", '      "regex": "(?i)api[_-]?key\\\\s*[:=]\\\\s*(\\\\S+)",'),
        ("agentbak-regex3", "  - regex: 'token: ([A-Za-z0-9._-]{20,})'"),
        # documentation tokens and examples
        ("jwt-io", f"Authorization: Bearer {JWT_IO}"),
        ("jwt-io2", f'    "id_token": "{JWT_IO}",'),
        ("jwt-io3", f"token={JWT_IO}"),
        ("aws-example", "aws_access_key_id = AKIAIOSFODNN7EXAMPLE"),
        ("aws-example2", "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        ("stripe-doc", "STRIPE_SECRET_KEY=sk_test_4eC39HqLyjWDarjtT1zdp7dc"),
        ("example-domain", "DATABASE_URL=postgres://user:password@localhost:5432/mydb"),
        ("example-url2", "mongodb://admin:admin@localhost:27017"),
        ("example-url3", "redis://:${REDIS_PASSWORD}@redis:6379/0"),
        ("example-url4", "postgres://app:<password>@db.internal/app"),
        # redacted and masked forms
        ("redacted-ghp", "GITHUB_TOKEN=ghp_…abcd"),
        ("redacted-ghp2", '    "token": "ghp_\\u2026abcd",'),
        ("redacted-ghp3", "token: ghp_****************************abcd"),
        ("redacted-openai", "OPENAI_API_KEY=sk-proj-****"),
        ("redacted-openai2", '"api_key": "sk-proj-***...***Qx9A"'),
        ("redacted-anthropic", "ANTHROPIC_API_KEY=sk-ant-api03-...AA"),
        ("redacted-brackets", "password=[REDACTED]"),
        ("redacted-masked", '  "secret": "[MASKED]",'),
        ("redacted-filtered", "  token: [FILTERED]"),
        ("redacted-stars", "DB_PASSWORD=********"),
        ("redacted-bullets", "password: ••••••••••••"),
        ("redacted-agentbak-preview", "found github-pat ghp_…Qx (40 chars) in notes.md"),
        ("redacted-hf", "HF_TOKEN=hf_***"),
        ("redacted-x", "SLACK_BOT_TOKEN=xoxb-XXXXXXXXXXXX-XXXXXXXXXXXXX-XXXXXXXXXXXXXXXXXXXXXXXX"),
        ("redacted-mid", "api_key: sk-or-v1-4f3a...e9b1"),
        # placeholders
        ("placeholder-angle", "password=<password>"),
        ("placeholder-angle2", "  api_key: <YOUR_API_KEY>"),
        ("placeholder-angle3", "curl -H 'Authorization: Bearer <token>' https://api.example.com"),
        ("placeholder-go-escaped", '{"password":"\\u003cpassword\\u003e"}'),
        ("placeholder-your", "OPENAI_API_KEY=your-openai-api-key-here"),
        ("placeholder-your2", "TAVILY_API_KEY=tvly-YOUR_API_KEY"),
        ("placeholder-changeme", "POSTGRES_PASSWORD=changeme"),
        ("placeholder-changeme2", "  password: change-me-please-123"),
        ("placeholder-xxx", "HF_TOKEN=hf_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
        ("placeholder-braces", "  api_key: {{ openai_api_key }}"),
        ("placeholder-todo", "JWT_SECRET=TODO-generate-me"),
        ("placeholder-dots", "ANTHROPIC_API_KEY=sk-ant-..."),
        ("placeholder-dollar", "password: $DB_PASSWORD"),
        ("placeholder-percent", "password = %(db_password)s"),
        ("placeholder-sample", "SENTRY_DSN=https://examplePublicKey@o0.ingest.sentry.io/0"),
        # empty assignments followed by another line
        ("empty-key", "OPENAI_API_KEY=\nOPENAI_BASE_URL=https://api.openai.com/v1/chat/completions?x=Zk9q2"),
        ("empty-key2", "ANTHROPIC_API_KEY=\nANTHROPIC_MODEL=claude-sonnet-4-5-20250929"),
        ("empty-key3", "GITHUB_TOKEN=\nGITHUB_API_URL=https://api.github.com/repos/acme/agent?ref=Zq8vN2x"),
        ("empty-yaml", "  password:\n    - PGDATA=/var/lib/postgresql/data/pgdata-v16"),
        ("empty-json", '    "apiKey": "",'),
        ("empty-token", "  token:\n    expires_at: 2026-06-01T09:13:00.123456+00:00"),
        ("null", "    api_key: null"),
        ("none", "token = None"),
        # names, counts, hints, ids
        ("counts", '{"usage": {"prompt_tokens": 1834, "completion_tokens": 211, "total_tokens": 2045}}'),
        ("max-tokens", "max_tokens=4096"),
        ("token-type", '  "token_type": "Bearer",'),
        ("csrf-name", "csrf_token_name: X-CSRF-Token"),
        ("password-hint", "password_hint: the usual one"),
        ("session-ulid", f'  "session_id": "{ulid()}",'),
        ("session-uuid", f'  "sessionId": "{u()}",'),
        ("request-id", f"x-request-id: req_{r(24)}"),
        ("tool-use-id", f'"tool_use_id": "toolu_01{r(22)}"'),
        ("call-id", f'"call_id": "call_{r(24)}"'),
        ("message-id", f'"id": "msg_01{r(22)}"'),
        ("chatcmpl-id", f'"id": "chatcmpl-{r(29)}"'),
        ("file-id", f'  "file_id": "file-{r(22)}"'),
        ("trace-id", f"traceparent: 00-{r(32, HEX)}-{r(16, HEX)}-01"),
        ("commit", f"commit {r(40, HEX)}"),
        ("commit2", f'  "sha": "{r(40, HEX)}",'),
        ("sha256", f"sha256: {r(64, HEX)}"),
        ("digest", f'  "digest": "sha256:{r(64, HEX)}",'),
        ("integrity", f'      "integrity": "sha512-{r(86, B64)}==",'),
        ("etag", f'etag: W/"{r(32, HEX)}"'),
        ("key-id", f'  "private_key_id": "{r(40, HEX)}",'),
        ("client-id", f'  "client_id": "{r(21, DIGITS)}",'),
        ("client-id2", f"GOOGLE_CLIENT_ID={r(12, DIGITS)}-{r(32, LOWER + DIGITS)}.apps.googleusercontent.com"),
        ("model-pplx", "model: pplx-70b-online"),
        ("model-xai", '"model": "xai-grok-4-fast-reasoning"'),
        ("model-name", "ANTHROPIC_MODEL=claude-opus-4-1-20250805"),
        ("public-key-ssh", f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{r(43, B64)} agent@host"),
        ("public-key-ssh-rsa", f"ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQ{r(200, B64)} deploy@ci"),
        ("age-recipient", f"recipients: [age1{r(58, BECH32)}]"),
        ("age-recipient2", f"SOPS_AGE_RECIPIENTS=age1{r(58, BECH32)}"),
        ("data-uri", f'<img src="data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAA{r(120, B64)}==">'),
        ("path-key", "private_key_path: ~/.ssh/id_ed25519"),
        ("path-key2", "GOOGLE_APPLICATION_CREDENTIALS=/var/run/secrets/gcp/key.json"),
        ("path-token", "token_file: /run/secrets/github-token"),
        ("path-pass", "password_file: /etc/agent/db.pass"),
        ("api-key-helper", '  "apiKeyHelper": "~/.claude/anthropic_key_helper.sh",'),
        ("url-no-pass", "git clone https://kevin@github.com/acme/agent.git"),
        ("url-git-ssh", "git@github.com:acme/agent.git"),
        ("url-port", "OLLAMA_HOST=http://localhost:11434"),
        ("url-query", "https://api.github.com/search/code?q=token+language:python&per_page=100"),
        ("secret-name", "  secretName: openai-api-key"),
        ("secret-name2", "kubectl create secret generic openai --from-literal=api-key"),
        ("function", "def get_api_key(self) -> str:"),
        ("function2", "  async refreshToken(): Promise<string> {"),
        ("type-hint", "    api_key: str = Field(default='', description='The API key')"),
        ("type-hint2", "    password: SecretStr"),
        ("prose", "The token expired, so the agent asked the user to log in again."),
        ("prose2", "Set the API key in your shell profile, never in the repository."),
        ("prose3", "Use a password manager; the secret is rotated every 90 days."),
        ("cert", "-----BEGIN CERTIFICATE-----"),
        ("pubkey-pem", "-----BEGIN PUBLIC KEY-----"),
        ("grep-pem", "grep -rl 'BEGIN RSA PRIVATE KEY' ~/.ssh"),
        ("pem-elided", '"private_key": "-----BEGIN PRIVATE KEY-----\\n...\\n-----END PRIVATE KEY-----\\n"'),
        ("hash-bcrypt-name", "password_hash_algorithm: bcrypt"),
        ("vault-path", "VAULT_ADDR=https://vault.internal:8200"),
        ("vault-accessor", "token_accessor: hmac-sha256:" + r(64, HEX)),
        ("hex-color", "  color: '#1f6feb'"),
        ("version", "tokenizer_version: 2024-05-13.1"),
        ("semver-key", "key: v1.2.3-rc.4+build.5"),
        ("cache-key", '"cache_key": "user-profile-page-1"'),
        ("npm-config", "npm_config_cache=/tmp/npm-cache"),
        ("hf-model", 'model = AutoModel.from_pretrained("hf_internal_testing/tiny-random-bert")'),
        ("sk-word", "Check the sk-learn docs for the pipeline API."),
        ("short-token", "token: abc123"),
        ("bool", "  verify_token: true"),
        ("number", "  token_ttl: 3600"),
        ("int-secret", "  client_secret_expiry: 1767225600"),
    ]


# Look-alikes inside the transcripts and configs too: the same lines, escaped for the file.
def place_lookalike(ctx, line):
    if ctx in ("claude", "codex"):
        text = f"$ grep -rn key src/\nsrc/app.py:12: {line}\n"
        if ctx == "claude":
            rec = {"type": "user", "sessionId": SESSION, "message": {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01" + r(22), "content": text}]}}
        else:
            inner = json.dumps({"output": text, "metadata": {"exit_code": 0}})
            rec = {"type": "response_item", "payload": {"type": "function_call_output", "call_id": "call_" + r(24), "output": inner}}
        return [json.dumps(rec, separators=(",", ":"))]
    return line.split("\n")


# ---------------------------------------------------------------------------------------
# Base64-hidden secrets.


def kinds(*names):
    by = {k[0]: k for k in KINDS}
    return [by[n] for n in names]


def hidden_secrets():
    """(file, lines builder) for secrets visible only after base64 decoding."""
    out = []
    # A Kubernetes Secret with data: values (base64 of the raw value).
    k8s = ["apiVersion: v1", "kind: Secret", "metadata:", "  name: agent-credentials", "  namespace: agents",
           "type: Opaque", "data:"]
    labels = []
    for kind, name, gen, shape in kinds("openai-project", "anthropic", "groq", "github-pat", "npm", "stripe",
                                        "postgres-url", "redis-url", "amqp-url", "db-password"):
        value = gen()
        labels.append((len(k8s), len(k8s), kind))
        k8s.append(f"  {name.lower().replace('_', '-')}: {b64(value)}")
    out.append(("home/deploy/agent-secret.yaml", k8s, labels))
    # A docker config.json: auth is base64 of user:token.
    dock = ["{", '  "auths": {']
    labels = []
    for host, tok in [("https://index.docker.io/v1/", "dckr_pat_" + r(27, URLSAFE)),
                      ("ghcr.io", github("ghp_")),
                      ("registry.gitlab.com", "glpat-" + r(20, URLSAFE))]:
        labels.append((len(dock) + 1, len(dock) + 1, "docker-auth"))
        dock += [f'    "{host}": {{', f'      "auth": "{b64("agent:" + tok)}"', "    },"]
    dock[-1] = "    }"
    dock += ["  }", "}"]
    out.append(("home/.docker/config.json", dock, labels))
    # `base64 .env > env.b64`: GNU base64 wraps at 76 columns.
    env_lines = []
    env_kinds = kinds("xai", "langsmith", "github-oauth", "datadog-api")
    for kind, name, gen, shape in env_kinds:
        env_lines.append(f"{name}={gen()}")
    wrapped = textwrap.wrap(b64("\n".join(env_lines) + "\n"), 76)
    out.append(("home/backup/env.b64", wrapped, [(0, len(wrapped) - 1, "dotenv-base64")]))
    # GOOGLE_CREDENTIALS as base64 of the service-account JSON (Terraform, GitHub Actions).
    sa = b64(json.dumps(gcp_service_account()))
    out.append(("home/ci/terraform.env", ["TF_VAR_region=europe-west4", f"GOOGLE_CREDENTIALS={sa}",
                                          "TF_VAR_project=agent-prod"], [(1, 1, "gcp-sa-base64")]))
    return out


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "agent-corpus")
    files = {}  # path -> list of lines
    labels = []

    def add(path, lines, spans, cls):
        buf = files.setdefault(path, [])
        base = len(buf)
        buf.extend(lines)
        for start, end, kind in spans:
            labels.append({"file": path, "line": base + start + 1, "end": base + end + 1, "kind": kind, "class": cls})

    # File preambles, so each file reads like the real thing.
    files["home/.cursor/mcp.json"] = ['{', '  "mcpServers": {', '    "tools": {', '      "command": "npx",',
                                      '      "args": ["-y", "@acme/mcp-tools"],', '      "env": {']
    files["home/.codex/config.toml"] = ['model = "gpt-5-codex"', 'approval_policy = "on-request"', "",
                                        "[mcp_servers.tools]", 'command = "npx"', 'args = ["-y", "@acme/mcp-tools"]',
                                        "", "[mcp_servers.tools.env]"]
    files["home/litellm/config.yaml"] = ["model_list:", "  - model_name: gpt-4o", "    litellm_params:",
                                         "      model: openai/gpt-4o", "environment_variables:"]
    files["home/deploy/secret.yaml"] = ["apiVersion: v1", "kind: Secret", "metadata:", "  name: agent-env",
                                        "type: Opaque", "stringData:"]
    files["home/notes/ops.md"] = ["# Ops notes", "", "Things the agent did this week.", ""]
    files["home/logs/curl-verbose.log"] = ["*   Trying 104.18.6.192:443...", "* Connected to api.openai.com (104.18.6.192) port 443",
                                           "> POST /v1/chat/completions HTTP/2", "> Host: api.openai.com"]

    for i, (kind, name, gen, shape) in enumerate(KINDS):
        for j in range(3):
            ctx = CONTEXT_ORDER[(i + 4 * j) % len(CONTEXT_ORDER)]
            path, render = CONTEXTS[ctx]
            lines, first, last = render(name, gen(), shape)
            add(path, lines, [(first, last, kind)], "live")

    looks = lookalikes()
    for i, (label, line) in enumerate(looks):
        for j in range(2 if i % 3 else 1):
            ctx = CONTEXT_ORDER[(i * 5 + j * 7) % len(CONTEXT_ORDER)]
            path = CONTEXTS[ctx][0]
            lines = place_lookalike(ctx, line)
            add(path, lines, [(0, len(lines) - 1, label)], "lookalike")

    for path, lines, spans in hidden_secrets():
        add(path, lines, spans, "base64")

    # File endings.
    files["home/.cursor/mcp.json"] += ['        "LOG_LEVEL": "info"', "      }", "    }", "  }", "}"]

    root = os.path.join(out, "files")
    for path, lines in sorted(files.items()):
        full = os.path.join(root, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w", encoding="utf-8", newline="\n") as f:
            f.write("\n".join(lines) + "\n")
    labels.sort(key=lambda l: (l["file"], l["line"]))
    with open(os.path.join(out, "labels.json"), "w", encoding="utf-8") as f:
        json.dump({"seed": SEED, "kinds": len(KINDS), "labels": labels}, f, indent=1)
        f.write("\n")
    counts = {}
    for l in labels:
        counts[l["class"]] = counts.get(l["class"], 0) + 1
    print(f"{len(files)} files, {len(KINDS)} credential kinds, labels {counts}", file=sys.stderr)


if __name__ == "__main__":
    main()
