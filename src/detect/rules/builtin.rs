//! The builtin provider rules, each with its test vectors beside it.
//!
//! Invariant: every rule has at least two positive vectors (each must yield a finding of this
//! rule) and two negative vectors (each must yield no finding of any rule);
//! `tests::every_rule_vector_holds` in `rules/mod.rs` runs them all. Token bodies in the
//! vectors are random strings made for these tests, not real credentials.

use super::{Gate, Rule, rule};

const T: Gate = Gate::Token;

/// The builtin rules, in the order in which they win when two match the same bytes.
pub static BUILTIN: &[Rule] = &[
    // --- AI providers -------------------------------------------------------------------
    rule(
        "openai-project-key",
        "OpenAI project API key",
        &["sk-proj-"],
        r"sk-proj-[A-Za-z0-9_-]{40,250}",
        T,
        &[
            "OPENAI_API_KEY=sk-proj-6ombYXUhDTm-y9IUfpD011RvlQCy2dsxWWHNCCI8VAhyDkjlmUoaYaLZVPvfCnABW1Z9gVPgZ36he38xhZ-hMH0qP_fels3ndiALS_StkTZE5Zbj4u-jQiwihi7_Z7-mWtBrE3C4qQLAAIjd24DIL0OuHSny",
            r#"{"openai": {"api_key": "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"}}"#,
        ],
        &[
            "OPENAI_API_KEY=sk-proj-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            "create one at https://platform.openai.com (it starts with sk-proj-...)",
        ],
    ),
    rule(
        "openai-service-key",
        "OpenAI service-account or admin key",
        &["sk-svcacct-", "sk-admin-"],
        r"sk-(?:svcacct|admin)-[A-Za-z0-9_-]{40,250}",
        T,
        &[
            "key: sk-svcacct-n-Ka7-WxYmhGAl9ZA2PT38zEtOG6OZr9cArCbM2iC-ScT8nopEel62EXo0fi_p3svcRRhPvL_IIgME-MoKML_oZXunRubynmvFjNhUgWxmvuloOowaSlOA31",
            "export OPENAI_ADMIN_KEY='sk-admin-veP8jxWv8h2VoqNVHgxNZRUWZF0X9zx20zshFF7--ZQ5q-GuZY23fEwAZdR5i097JBsfEP7a5AsB9eYHcHaq9_ZkMs'",
        ],
        &["sk-svcacct-<your-key>", "sk-admin-short"],
    ),
    rule(
        "openai-legacy-key",
        "OpenAI legacy API key",
        &["T3BlbkFJ"],
        r"\bsk-[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}\b",
        T,
        &[
            "openai.api_key = \"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\"",
            "OPENAI_API_KEY=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",
        ],
        &[
            "sk-xxxxxxxxxxxxxxxxxxxxT3BlbkFJxxxxxxxxxxxxxxxxxxxx",
            "T3BlbkFJ is base64 for OpenAI",
        ],
    ),
    rule(
        "openrouter-api-key",
        "OpenRouter API key",
        &["sk-or-v1-"],
        r"\bsk-or-v1-[a-f0-9]{64}\b",
        T,
        &[
            "OPENROUTER_API_KEY=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",
            r#""apiKey": "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""#,
        ],
        &[
            "sk-or-v1-0000000000000000000000000000000000000000000000000000000000000000",
            "sk-or-v1-4bde709f8058127bea87",
        ],
    ),
    rule(
        "anthropic-api-key",
        "Anthropic API key",
        &["sk-ant-"],
        r"\bsk-ant-(?:api|admin|oat|sid)\d{2}-[A-Za-z0-9_-]{80,120}",
        T,
        &[
            "ANTHROPIC_API_KEY=sk-ant-api03-GEcIzzOLWON8oc11J8Ir8KKJtW7NLQNWRmfjvakbXjdJ5VTqGSjlaZ-aOQ2UFBSujhcSvxRmdq48veoDhnLrP7iFy3N1CAA",
            "  key: \"sk-ant-admin01-gEshVlM9YxUUMWqBEqw1xPyHj10ZqcStTdnDO6wa3rUyKLVBf0tWHVt48fKJYCOF7RFFbFgJ6GmPsgZQuFh6LedegcyTpAA\"",
        ],
        &[
            "ANTHROPIC_API_KEY=sk-ant-api03-...",
            "sk-ant-api03-YOUR_KEY_GOES_HERE_AND_IT_IS_LONG_ENOUGH_TO_LOOK_LIKE_A_KEY_BUT_IS_NOT_REAL_AT_ALL_OK",
        ],
    ),
    rule(
        "groq-api-key",
        "Groq API key",
        &["gsk_"],
        r"\bgsk_[A-Za-z0-9]{52}\b",
        T,
        &[
            "GROQ_API_KEY=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",
            r#"{"groq": "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"}"#,
        ],
        &[
            "GROQ_API_KEY=gsk_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            "gsk_T5aB2n1FQG7TozN8BkI5",
        ],
    ),
    rule(
        "huggingface-token",
        "Hugging Face access token",
        &["hf_"],
        r"\bhf_[A-Za-z0-9]{34,40}\b",
        T,
        &[
            "HF_TOKEN=hf_wgWXfjqtb31RpwOUvR7X6TKE70jvoA4LwD",
            "huggingface-cli login --token hf_J4wzH1CUry55rkshM09VP4Vb98IcT8I5qd",
        ],
        &[
            "model = self.hf_model_name_or_path_for_this_run",
            "HF_TOKEN=hf_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        ],
    ),
    rule(
        "replicate-api-token",
        "Replicate API token",
        &["r8_"],
        r"\br8_[A-Za-z0-9]{37}\b",
        T,
        &[
            "REPLICATE_API_TOKEN=r8_jsB0rkVLlxyO6LErd4zew4mGPsFhANYx9YPVs",
            "token: r8_It5vQfewpqJ3E7bNX8boFJ17YajiD5llizNAP",
        ],
        &[
            "REPLICATE_API_TOKEN=r8_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            "r8_short",
        ],
    ),
    rule(
        "perplexity-api-key",
        "Perplexity API key",
        &["pplx-"],
        r"\bpplx-[A-Za-z0-9]{48}\b",
        T,
        &[
            "PERPLEXITY_API_KEY=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",
            "\"key\": \"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\"",
        ],
        &[
            "pplx-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            "pplx-7b-online is a model name",
        ],
    ),
    rule(
        "xai-api-key",
        "xAI API key",
        &["xai-"],
        r"\bxai-[A-Za-z0-9]{80}\b",
        T,
        &[
            "XAI_API_KEY=xai-ltgTx26HsvOob2k6hslHiCNOq73lprL78tNnJLeYIBSblflpKZ3uBH5vw6gDDrW2FGnhsq7aZX7ozxc2",
            "api_key: xai-eNXyUP9kacvHxeRfr0TMrftbhCylMK78bTYiVMxgonsEkUAfAGevXgyoHU0XFfg7Mw7k7Fm0aQavuGNa",
        ],
        &["xai-grok-beta is a model", "XAI_API_KEY=xai-<your-key>"],
    ),
    rule(
        "langsmith-api-key",
        "LangSmith API key",
        &["lsv2_"],
        r"\blsv2_(?:pt|sk)_[a-f0-9]{32}_[a-f0-9]{10}\b",
        T,
        &[
            "LANGSMITH_API_KEY=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",
            "LANGCHAIN_API_KEY=\"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\"",
        ],
        &["lsv2_pt_...", "lsv2_sk_ba8e08f0ec3b_611ce71da1"],
    ),
    // --- Code hosts and package registries ----------------------------------------------
    rule(
        "github-pat",
        "GitHub personal access token (classic)",
        &["ghp_"],
        r"\bghp_[A-Za-z0-9]{36}\b",
        T,
        &[
            "export GITHUB_TOKEN=ghp_Vq4einOFO6qL5lRbIeoWdHmf5ee6Pm0aIEJs",
            r#""token": "ghp_AGjFiLytOG0ZkSbvTLJ1Wx4OCJosKD2IfKIW""#,
        ],
        &[
            "GITHUB_TOKEN=ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            "ghp_H0S2UGTc2ZTCWRUKxTab is too short",
        ],
    ),
    rule(
        "github-oauth-token",
        "GitHub OAuth access token",
        &["gho_"],
        r"\bgho_[A-Za-z0-9]{36}\b",
        T,
        &[
            "oauth_token: gho_spvNLUBQzCbrVD4YSqFbfCI6dTUw0oS73y53",
            "Authorization: token gho_JYGDC6yQTetTcDxiK7rANYMZF2uBqA4stka4",
        ],
        &[
            "gho_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
            "gho_iZNa61uHckWU82PpwUUuFPRbawSturlEpGZn4cD2QiuY",
        ],
    ),
    rule(
        "github-user-to-server-token",
        "GitHub App user-to-server token",
        &["ghu_"],
        r"\bghu_[A-Za-z0-9]{36}\b",
        T,
        &[
            "GH_TOKEN=ghu_Qg1RSmK9klpNU2vDDIcB43o2MlUH9NlSOiUC",
            "token=ghu_vH4OcqGeTplihkeL9yWRhnKysEnb6YfQwnAs&x=1",
        ],
        &["ghu_<token>", "ghu_IggFWouDufI3I76oaCs44rlbhz6VJGb6A5o"],
    ),
    rule(
        "github-server-to-server-token",
        "GitHub App installation token",
        &["ghs_"],
        r"\bghs_[A-Za-z0-9]{36}\b",
        T,
        &[
            "x-access-token:ghs_fNcSTimk90zyCiB4kGwW9mK0xSI9QNepGsFm@github.com",
            "{\"token\":\"ghs_aDer9bdu6yH18vmv7OLN66BLnC4hWj8LIQG3\"}",
        ],
        &["ghs_${INSTALLATION_TOKEN}", "ghs_h6GtLN0der"],
    ),
    rule(
        "github-refresh-token",
        "GitHub refresh token",
        &["ghr_"],
        r"\bghr_[A-Za-z0-9]{36,76}\b",
        T,
        &[
            "refresh_token=ghr_uroBh8mKL2V0KaqNKURaeFfDDkfL3AdDh2R8PZv1qhG0r0YSl62Qh0VpTPlotwfn0t8pzbP1rlpa",
            "ghr_JSBU8iftl3tqlEHIk6pvAceIwfMNZfetou6V",
        ],
        &[
            "ghr_000000000000000000000000000000000000",
            "ghr_DlW0zH6rIjWW",
        ],
    ),
    rule(
        "github-fine-grained-pat",
        "GitHub fine-grained personal access token",
        &["github_pat_"],
        r"\bgithub_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59}\b",
        T,
        &[
            "GITHUB_TOKEN=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",
            "token: \"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\"",
        ],
        &[
            "github_pat_XXXXXXXXXXXXXXXXXXXXXX_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
            "see the github_pat_ prefix docs",
        ],
    ),
    rule(
        "gitlab-pat",
        "GitLab personal access token",
        &["glpat-"],
        r"\bglpat-[A-Za-z0-9_-]{20,64}",
        T,
        &[
            "GITLAB_TOKEN=glpat-Lcm33bC89sTV1mBqgIKn",
            "private_token: glpat-RXG0fNKwMF72rvqd9sZ6KQ6qDl",
        ],
        &["glpat-xxxxxxxxxxxxxxxxxxxx", "glpat-abc"],
    ),
    rule(
        "gitlab-runner-token",
        "GitLab runner authentication token",
        &["glrt-"],
        r"\bglrt-[A-Za-z0-9_-]{20,64}",
        T,
        &[
            "token = \"glrt-FLwBTyAuGGYUxfmolF6j\"",
            "RUNNER_TOKEN=glrt-731IPl627La4Sz6WXP2YWquKaG",
        ],
        &["glrt-REDACTED-REDACTED-REDACTED", "glrt-123"],
    ),
    rule(
        "npm-token",
        "npm access token",
        &["npm_"],
        r"\bnpm_[A-Za-z0-9]{36}\b",
        T,
        &[
            "//registry.npmjs.org/:_authToken=npm_E0y4zV1AJ4FclIrnzYrJlShT2hFRoGxp9AMx",
            "NPM_TOKEN=npm_qnnHFE4alABK2ebqa3zZRtFBBzdD1Pq6r0eV",
        ],
        &[
            "NPM_TOKEN=npm_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            "npm_config_cache=/tmp/npm_cache_dir_for_builds",
        ],
    ),
    rule(
        "pypi-token",
        "PyPI API token",
        &["pypi-AgEIcHlwaS5vcmc"],
        r"\bpypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,250}",
        T,
        &[
            "password = pypi-AgEIcHlwaS5vcmcX2FjspVnAFsPkFuh4e9lFWdYzEw361H7W8hADXmyc4-bJhypH2c0YN-VU7nhx8MdbeqNgc7MUpJxeVzaHzHgmg8vC-4gg_BuI28Mb_gLvu_KSmMG1bjLeAXK8PGA_NgZ7UWyGfGnqreY",
            "TWINE_PASSWORD=pypi-AgEIcHlwaS5vcmcEPkz_IREzKjWAzBAhvOhlVA5hvCCKh7QnlLFTjGCR6IlB2uMbnzdMiUyxjNQmeEf3pDBrP",
        ],
        &[
            "pypi-AgEIcHlwaS5vcmc...",
            "pypi-AgEIcHlwaS5vcmcxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        ],
    ),
    rule(
        "rubygems-api-key",
        "RubyGems API key",
        &["rubygems_"],
        r"\brubygems_[a-f0-9]{48}\b",
        T,
        &[
            ":rubygems_api_key: rubygems_1954aa0d2ca20c40002893f8bd2767666b03176828c256ec",
            "GEM_HOST_API_KEY=rubygems_5d99669002e22b61dd21e255b98f0b241e32c44995271e67",
        ],
        &["rubygems_33ed88580ec4e458880d", "rubygems_version: 3.5.3"],
    ),
    rule(
        "dockerhub-pat",
        "Docker Hub personal access token",
        &["dckr_pat_"],
        r"\bdckr_pat_[A-Za-z0-9_-]{27}\b",
        T,
        &[
            "DOCKERHUB_TOKEN=dckr_pat_3BGV6xMmpiFtdtHXGI7O2FVlyeX",
            "password: dckr_pat_whaMWoCUxIME0IQSIQwaxDEQ4RT",
        ],
        &["dckr_pat_xxxxxxxxxxxxxxxxxxxxxxxxxxx", "dckr_pat_short"],
    ),
    // --- Chat and collaboration ---------------------------------------------------------
    rule(
        "slack-bot-token",
        "Slack bot token",
        &["xoxb-"],
        r"\bxoxb-[0-9]{10,13}-[0-9]{10,13}-[A-Za-z0-9]{20,40}\b",
        T,
        &[
            "SLACK_BOT_TOKEN=xoxb-091877682786-6544228363923-kKEYriT8ODek1TO3bgwaZFhh",
            "bot_token = \"xoxb-81225909516-507068360826-YzToHSVGUyonz4iIHrqcPMAx\"",
        ],
        &[
            "SLACK_BOT_TOKEN=xoxb-your-token-here",
            "xoxb-000000000000-0000000000000-xxxxxxxxxxxxxxxxxxxxxxxx",
        ],
    ),
    rule(
        "slack-user-token",
        "Slack user token",
        &["xoxp-", "xoxe-"],
        r"\bxox[pe]-[0-9]{10,13}-[0-9]{10,13}-[0-9]{10,13}-[A-Za-z0-9]{28,40}\b",
        T,
        &[
            "SLACK_USER_TOKEN=xoxp-804838246320-888407131960-4192048237225-ATKF03pH5HXq0xpnZEsLWkwtYlGRaAAI",
            "token: xoxe-4265524231-779773882327-5526763126567-NIpUi3gSMPFlJPHjX6xKCtk1SYWcNq4W",
        ],
        &["xoxp-<your-user-token>", "xoxp-123-456-789-abc"],
    ),
    rule(
        "slack-app-token",
        "Slack app-level token",
        &["xapp-"],
        r"\bxapp-\d-[A-Z0-9]{9,12}-\d{10,14}-[a-f0-9]{60,70}\b",
        T,
        &[
            "SLACK_APP_TOKEN=xapp-1-LD1D5CGLLRM-9940718194430-5d2a2fb3f54cf18059609fede376a613f6ac5a6dcb378ef7c48cd0ae4e64c9d1",
            "app_token: \"xapp-1-H6HYQMSEH3-5623840716952-580cf27178b80168f62cd3bc91737a0f871ab416f48cec787265f93a37bc1b99\"",
        ],
        &[
            "xapp-1-XXXXXXXXXXX-0000000000000-xxxx",
            "SLACK_APP_TOKEN=xapp-...",
        ],
    ),
    rule(
        "slack-webhook",
        "Slack incoming webhook URL",
        &["hooks.slack.com/"],
        r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/_-]{40,120}",
        T,
        &[
            "webhook: https://hooks.slack.com/services/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",
            "\"url\": \"https://hooks.slack.com/triggers/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\"",
        ],
        &[
            "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
            "see https://hooks.slack.com/services/ for details",
        ],
    ),
    rule(
        "discord-webhook",
        "Discord webhook URL",
        &["/api/webhooks/"],
        r"https://(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/\d{17,20}/[A-Za-z0-9_-]{60,70}",
        T,
        &[
            "DISCORD_WEBHOOK=https://discord.com/api/webhooks/4203477618971894904/o2sWS0y9wjYSAIvJuhmkbax5Dxy1EjGhMB2LvSkW9rOX0LJsb9pjg1xQTda_mazRm4QF",
            "url: https://discordapp.com/api/webhooks/677002100421292275/vp7pdHagvvs9PdUSe_jIgjPSGsfFiwL9UE-ZJChFGeKsnCyPp-teOaMIMZgWOBfQmOUZ",
        ],
        &[
            "https://discord.com/api/webhooks/123/abc",
            "https://discord.com/api/webhooks/{id}/{token}",
        ],
    ),
    rule(
        "telegram-bot-token",
        "Telegram bot token",
        &[":AA"],
        r"(?:^|[^0-9A-Za-z]|bot)(?P<secret>\d{8,10}:AA[A-Za-z0-9_-]{33})(?:[^A-Za-z0-9_-]|$)",
        T,
        &[
            "TELEGRAM_BOT_TOKEN=6935169644:AAGOwnQPNC3m1RyzQluU5_NQIfmQuyq6pWb",
            "https://api.telegram.org/bot617281809:AAUMSlmvpDnhopAn00BWnalisfwZfjICqYm/getMe",
        ],
        &[
            "time 12:34:AA build",
            "TELEGRAM_BOT_TOKEN=123456789:AAxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        ],
    ),
    rule(
        "linear-api-key",
        "Linear API key",
        &["lin_api_"],
        r"\blin_api_[A-Za-z0-9]{40}\b",
        T,
        &[
            "LINEAR_API_KEY=lin_api_Acn5LZqzONjL6jwZMBb07Yt7enBr3cVumCbGur5W",
            "\"linear\": \"lin_api_UZDGgTrswOLi2foHi7Cs2ytl8yOk1jkb2WIen66D\"",
        ],
        &[
            "lin_api_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            "lin_api_2sAyAa0FShwv",
        ],
    ),
    rule(
        "notion-token",
        "Notion integration token",
        &["ntn_"],
        r"\bntn_[0-9]{11}[A-Za-z0-9]{35}\b",
        T,
        &[
            "NOTION_TOKEN=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",
            "auth: 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",
        ],
        &[
            "ntn_xxxxxxxxxxx",
            "ntn_00000000000xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        ],
    ),
    rule(
        "figma-token",
        "Figma personal access token",
        &["figd_"],
        r"\bfigd_[A-Za-z0-9_-]{40}\b",
        T,
        &[
            "FIGMA_TOKEN=figd_htvwsQPinxok5WsDiRCY8Q2VcdTzu96N1hDCZ9c8",
            "X-Figma-Token: figd_5zyItyo8rcWhC6R3BX9XRaT33R927qdnTe1NFuPn",
        ],
        &["figd_<token>", "figd_short"],
    ),
    rule(
        "atlassian-api-token",
        "Atlassian API token",
        &["ATATT3"],
        r"\bATATT3[A-Za-z0-9_=-]{180,200}",
        T,
        &[
            "JIRA_API_TOKEN=ATATT32Y59H7fd6UPTyfiZQ0x3uqaytR7Bc1LzDi50Uv1AhuMctgy7VEi6gy0eKARJeknaX5772pxN2JdyS76ODlzbEP3n4f6ieKVq3Jq9hf1uhzk5zqH8IJWCMrX3bwhEs5Tu9jZzT9wDPPRcQ97pqQj3aMeqvOPIgqr3719hPvqwKaZTPQ0EYJN05N3Ifi",
            "token: ATATT3xX38wBlvh6QSWXQGk0uaX2gUgaDpb5lhpRzdpDlIEnk3J538Uoslml7xkq89vJGwShMVMrxf8piibsWitkBwKpyOaNAMqUJobMzp9OnkDYmQPwDzsSwX2XOGLnhpEclaJidBwBjg48abqrzNHvP6x8Gm9zMpmZIsqGsf47oqamKb26o7GzLbUAXPMW",
        ],
        &["ATATT3...", "ATATT3xFfGF0rj9LSw6txtW2TL0Q5LFu"],
    ),
    // --- Payments and commerce ----------------------------------------------------------
    rule(
        "stripe-live-key",
        "Stripe live secret or restricted key",
        &["sk_live_", "rk_live_"],
        r"\b[sr]k_live_[A-Za-z0-9]{24,99}\b",
        T,
        &[
            "STRIPE_SECRET_KEY=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",
            "stripe.api_key = 'rk_live_GCptQeCEqGbuJAt4hXr3noPl'",
        ],
        &[
            "see the sk_live_ prefix in the Stripe docs",
            "sk_live_xxxxxxxxxxxxxxxxxxxxxxxx",
        ],
    ),
    rule(
        "stripe-webhook-secret",
        "Stripe webhook signing secret",
        &["whsec_"],
        r"\bwhsec_[A-Za-z0-9]{32,64}\b",
        T,
        &[
            "STRIPE_WEBHOOK_SECRET=whsec_USYePuY5EbMBnsS7pXBcYvk8FV6Zupdr",
            "signing_secret: whsec_z5SYG0RIQCz3O8vShJZRXzVH1J20cT4B6knlrbeZ",
        ],
        &["whsec_...", "whsec_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"],
    ),
    rule(
        "shopify-token",
        "Shopify access token or shared secret",
        &["shpat_", "shpca_", "shppa_", "shpss_"],
        r"\bshp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}\b",
        T,
        &[
            "SHOPIFY_ACCESS_TOKEN=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",
            "shared_secret: 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",
        ],
        &[
            "shpat_00000000000000000000000000000000",
            "shpat_8751c97ceb6690bf",
        ],
    ),
    rule(
        "square-token",
        "Square access token or OAuth secret",
        &["sq0atp-", "sq0csp-"],
        r"\bsq0(?:atp|csp)-[A-Za-z0-9_-]{22,43}\b",
        T,
        &[
            "SQUARE_ACCESS_TOKEN=sq0atp-o0Hq9DjGE0vFHeffE0QyEl",
            "client_secret: sq0csp-kHPQEEnT71KF1atJNP6yMMj45vjhio8OXW6m9-YXsCQ",
        ],
        &["sq0atp-xxxxxxxxxxxxxxxxxxxxxx", "sq0atp-short"],
    ),
    rule(
        "sendgrid-api-key",
        "SendGrid API key",
        &["SG."],
        r"\bSG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}\b",
        T,
        &[
            "SENDGRID_API_KEY=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",
            "\"sendgrid\": \"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\"",
        ],
        &[
            "msg.payload.id = 3",
            "SG.xxxxxxxxxxxxxxxxxxxxxx.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        ],
    ),
    // --- Cloud and infrastructure -------------------------------------------------------
    rule(
        "aws-access-key-id",
        "AWS access key id",
        &["AKIA", "ASIA", "ABIA", "ACCA"],
        r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}\b",
        T,
        &[
            "aws_access_key_id = AKIAECRXQYJPAD7KUEWY",
            "\"AccessKeyId\": \"ASIA7R33IWMQ2F7BG7Z7\"",
        ],
        &["aws_access_key_id = AKIAIOSFODNN7EXAMPLE", "AKIAF7YDMBAIJX"],
    ),
    rule(
        "aws-secret-access-key",
        "AWS secret access key in an assignment",
        &[
            "aws_secret",
            "aws-secret",
            "awssecret",
            "secret_access_key",
            "secretaccesskey",
        ],
        r#"(?i)(?:aws[_-]?secret[_-]?(?:access[_-]?)?key|secret[_-]?access[_-]?key)["']?\s*(?:=|:|=>)\s*["']?(?P<secret>[A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+]|$)"#,
        T,
        &[
            "aws_secret_access_key = bAPmVUXM0N+2p3w6l7ggk2oSGIdK/UPx0mHwbOrg",
            "\"SecretAccessKey\": \"PKBoebVt1lWyInkfBfQYs4vK2Qlpfdz0rbErJudF\",",
        ],
        &[
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "aws_secret_access_key = ${AWS_SECRET_ACCESS_KEY}",
        ],
    ),
    rule(
        "google-api-key",
        "Google API key",
        &["AIza"],
        r"\bAIza[0-9A-Za-z_-]{35}",
        T,
        &[
            "GOOGLE_API_KEY=AIzaf7e6CoDFYP8_ABR-YHBAnGv0aOtDc472lR6",
            "key=AIzaj6IudMzhh03ev5qsDCKDfeBHDuZpyAt11Y8&q=x",
        ],
        &["AIzaxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "AIzafYOJBT9lhf"],
    ),
    rule(
        "google-oauth-client-secret",
        "Google OAuth client secret",
        &["GOCSPX-"],
        r"\bGOCSPX-[A-Za-z0-9_-]{28}",
        T,
        &[
            "\"client_secret\": \"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\"",
            "GOOGLE_CLIENT_SECRET=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",
        ],
        &["GOCSPX-xxxxxxxxxxxxxxxxxxxxxxxxxxxx", "GOCSPX-short"],
    ),
    rule(
        "azure-storage-key",
        "Azure storage account key in a connection string",
        &["accountkey="],
        r"(?i)AccountKey=(?P<secret>[A-Za-z0-9+/]{86}==)",
        T,
        &[
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=K+7KrQdJgZ00Azp+qpD93gR3vevJqz1jgXF6RjLlFC/PbSm3Cp5VKwzu6WCgyOKp/s7vYJgFBfdDCyVAbdjiRh==;EndpointSuffix=core.windows.net",
            "AZURE_STORAGE_CONNECTION_STRING=\"AccountName=x;AccountKey=6L45ve5BlxBLZTtA+fsEy936oXiQFQ7UPIqVeJ3irYBbLLOYybbL/pGkZz1V3z88bE0doqwNglhJKCdmsFNDP+==\"",
        ],
        &[
            "AccountKey=<your-account-key>",
            "AccountName=devstoreaccount1;AccountKey=",
        ],
    ),
    rule(
        "digitalocean-token",
        "DigitalOcean token",
        &["dop_v1_", "doo_v1_", "dor_v1_"],
        r"\bdo[por]_v1_[a-f0-9]{64}\b",
        T,
        &[
            "DIGITALOCEAN_TOKEN=dop_v1_d9a3779c0eb8fa1f133bf34a646017b5f574ad5ee783d1c44431e62c4912b7ca",
            "refresh_token: dor_v1_dd1b542c5c663edef8438dfcbe85e0b1a2f1103ba53706acbb11222f4ddaa073",
        ],
        &[
            "dop_v1_0000000000000000000000000000000000000000000000000000000000000000",
            "dop_v1_115a3d4706",
        ],
    ),
    rule(
        "databricks-token",
        "Databricks access token",
        &["dapi"],
        r"\bdapi[a-f0-9]{32}(?:-\d)?\b",
        T,
        &[
            "DATABRICKS_TOKEN=dapie9d76d442e8a6819e434f6f0e7293d77",
            "token = \"dapib57bb1b93b7275725e08cbbe51501799-2\"",
        ],
        &[
            "dapi00000000000000000000000000000000",
            "the dapi endpoint answered",
        ],
    ),
    rule(
        "heroku-api-key",
        "Heroku API key",
        &["HRKU-"],
        r"\bHRKU-[A-Za-z0-9_-]{60}\b",
        T,
        &[
            "HEROKU_API_KEY=HRKU-R9VHa1IjvUWT0wgC3P3zbbVcThULJ8in5CvPywk4UKvIX9GboCEKLRkzbfRX",
            "api_key: HRKU-Polmww3RewneAAlWG7Crz1ghewNDM4szBXnfAq7WE3A8aGGcez91Kx7YqlfP",
        ],
        &[
            "HRKU-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            "HRKU-short",
        ],
    ),
    rule(
        "newrelic-user-key",
        "New Relic user API key",
        &["NRAK-"],
        r"\bNRAK-[A-Z0-9]{27}\b",
        T,
        &[
            "NEW_RELIC_API_KEY=NRAK-CX0FOZJLMWF37Q8C0BY4US9HNOK",
            "api_key: NRAK-ZQT7FLTWGEJ6L9UJ38BGM13X8FU",
        ],
        &["NRAK-XXXXXXXXXXXXXXXXXXXXXXXXXXX", "NRAK-SHORT"],
    ),
    rule(
        "supabase-token",
        "Supabase access token",
        &["sbp_"],
        r"\bsbp_[a-f0-9]{40}\b",
        T,
        &[
            "SUPABASE_ACCESS_TOKEN=sbp_5fc347ce9e9144d1150a1081f04efe636add6b51",
            "token: sbp_9fff1262796ae4b7b002946be562d3ff820649b9",
        ],
        &[
            "sbp_0000000000000000000000000000000000000000",
            "sbp_687e1d37",
        ],
    ),
    rule(
        "sentry-token",
        "Sentry auth token",
        &["sntrys_", "sntryu_"],
        r"\bsntry[su]_[A-Za-z0-9+/=_]{64,200}",
        T,
        &[
            "SENTRY_AUTH_TOKEN=sntrys_ynd5zeOVzh097idsDFI9pT2Q7EshFB67gYmF4Ll0dii6s5pwwWoFqjr4Ga9BghpkKbweSaMZBIO2pY1Z9JvIxK4YAy2rsmrs9WawhIvCQQcinRPTZoAy2OFR",
            "auth.token=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",
        ],
        &["sntrys_...", "sntryu_85951acdda"],
    ),
    rule(
        "grafana-token",
        "Grafana service-account or cloud token",
        &["glsa_", "glc_"],
        r"\b(?:glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}|glc_[A-Za-z0-9+/]{32,400}={0,2})",
        T,
        &[
            "GRAFANA_TOKEN=glsa_V5TQuUXXtqoFCNyjjbD06Dn52D8Jd5TQ_5dab4de4",
            "GRAFANA_CLOUD_TOKEN=glc_ILn1vZwooO8AlQU7VBZp+BWtRA1ptmDAeQR7kl5r3Z7zf4mIV9t9lsCLkJCiG/CxU6iJXy6wTnuxIvt+SRg4xiFBQ77rekbaj/J2VGl8LDkkUzZFcTB1t87a",
        ],
        &[
            "glsa_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx_xxxxxxxx",
            "glc_short",
        ],
    ),
    rule(
        "doppler-token",
        "Doppler token",
        &["dp.pt.", "dp.st.", "dp.sa."],
        r"\bdp\.(?:pt|st|sa|ct)\.[A-Za-z0-9]{40,44}\b",
        T,
        &[
            "DOPPLER_TOKEN=dp.pt.j65ZvDjYR4kCydVqMLkdj5ldlUq5XJdhkK3m88XJrmX",
            "token: dp.st.6Jqo2ojLIc8NqoDThyGPnnAysa1GYTD2Emxw8eG4rL4",
        ],
        &[
            "dp.pt.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            "dp.pt.short",
        ],
    ),
    rule(
        "pulumi-token",
        "Pulumi access token",
        &["pul-"],
        r"\bpul-[a-f0-9]{40}\b",
        T,
        &[
            "PULUMI_ACCESS_TOKEN=pul-c3de1d94fedb66877c4c4925d1fa9c3d420a1df0",
            "token: pul-f37598e48a34c164507dfa7ac14f21294083a848",
        ],
        &[
            "pul-0000000000000000000000000000000000000000",
            "pul-53660ee6de94",
        ],
    ),
    rule(
        "postman-api-key",
        "Postman API key",
        &["PMAK-"],
        r"\bPMAK-[a-f0-9]{24}-[a-f0-9]{34}\b",
        T,
        &[
            "POSTMAN_API_KEY=PMAK-506b554e2c9765f09b731099-e5b6f6629c0e6832f58611397238095ca0",
            "x-api-key: PMAK-1868d02bd55f8fc0b4b43610-8a63f8b604854592b193714f1d74ff58f1",
        ],
        &[
            "PMAK-xxxxxxxxxxxxxxxxxxxxxxxx-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            "PMAK-dd569cd018",
        ],
    ),
    rule(
        "terraform-cloud-token",
        "Terraform Cloud / HCP API token",
        &[".atlasv1."],
        r"\b[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_=-]{60,70}",
        T,
        &[
            "token = \"wA8CsVCUSII2b0.atlasv1.KYJHtbT3kC4F9JmvnCERulHQfhyfQEgSN3JH8Aku8bQKRdH4bWhHaHzUIAVMtjraUso\"",
            "TF_TOKEN_app_terraform_io=052DIfYgRv8JxD.atlasv1.bzFlFv43BPvVrkfyxKBoKO5JqxZo2hKPvQ2HI5j6tKLvUmg81k5s7AFWZwVBZM1l3W1",
        ],
        &[
            "xxxxxxxxxxxxxx.atlasv1.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            "00MNNDnjeIJit6.atlasv1.short",
        ],
    ),
    // --- Secret managers and keys -------------------------------------------------------
    rule(
        "vault-service-token",
        "Vault / OpenBao service token",
        &["hvs."],
        r"\bhvs\.[A-Za-z0-9_-]{24,200}",
        T,
        &[
            "VAULT_TOKEN=hvs.jKXoeUx9QxxPmcHQwIYctfcc",
            "X-Vault-Token: hvs.CAESINBkPcBEhpWIdpDoBgQ1DH3kkQEz-1Py_d0tU3SYkgwrTOCSDp8IB9PgUHZ_NEv0__XSFGLoi5WwGcJ-RK7GsAkAqzz",
        ],
        &["VAULT_TOKEN=hvs.xxxxxxxxxxxxxxxxxxxxxxxx", "hvs.short"],
    ),
    rule(
        "vault-batch-token",
        "Vault / OpenBao batch token",
        &["hvb."],
        r"\bhvb\.[A-Za-z0-9_-]{24,300}",
        T,
        &[
            "VAULT_TOKEN=hvb.AAAAAQ2-Fa9BQjF8Y17TkGy3rYPx-LUfC_e87Y5_YuVaJAaqqgRvqaXLD8TjIKsV0n4TNyXsA7nzFwlY-MZEaB4ijhmA_T6acGF8ND67b6uRC4M0Texk6TZ1_O5xghK1S4cSFJwp",
            "token: hvb.q0LkxjCZTevZ2aY9AErYUIgy41E8QVhXzMJA2kCZszg3ndcNxW4ygzKpJAaDv4OeMpNHKQNOfyNTXpuG0QFloBIaI2",
        ],
        &["hvb.<token>", "hvb.short"],
    ),
    rule(
        "vault-legacy-token",
        "Vault / OpenBao legacy token in an assignment",
        &[
            "vault_token",
            "vault-token",
            "vaulttoken",
            "bao_token",
            "bao-token",
        ],
        r#"(?i)(?:x-)?(?:vault|bao)[_-]?token["']?\s*(?:=|:)\s*["']?(?P<secret>s\.[A-Za-z0-9]{24})\b"#,
        T,
        &[
            "VAULT_TOKEN=s.g8A1cr4DRBTA9GLZs2wwV6pj",
            "X-Vault-Token: s.6xtb6zon6pQQPgQk2K3vAivd",
        ],
        &[
            "VAULT_TOKEN=s.xxxxxxxxxxxxxxxxxxxxxxxx",
            "vault_token: ${VAULT_TOKEN}",
        ],
    ),
    rule(
        "1password-service-token",
        "1Password service-account token",
        &["ops_eyJ"],
        r"\bops_eyJ[A-Za-z0-9+/=_-]{250,}",
        T,
        &[
            "OP_SERVICE_ACCOUNT_TOKEN=ops_eyJ_KftO-F89sf0Zik8Whi5hto59gdh6sbMww7bYd-9WZoUACBGlNALb4ziDLxRbsoPf3V1od3xcz5PCSYjvXq4GSxgy-xh50FvCncRamxm_7ukfP03n0SpFhU0bwcV9nD_QkYHuCwZqlNtpe1duzrpGbIxOkzYCW-WpIo4y94VLQCx6EJYSq2u6bbgOYRf7ogzlPbCd3kc2MAnfu217lXDMXvYd2cFMJmetrnUwWHDfSPE4ZIcJv4TyKIxJqImxsaw4UStdkry8VBwFhnOJ7EXeCnzqlqVHHKWudFYXdIKcG3W",
            "token: ops_eyJkoj9TxzJQi542oSLwpIcZEwkvLP56Ii1HqnqUFBGbjAWGHADQE9NamHLLGFJQbcAiotUJml7bDxP50taayYdigMPvDvMFpCojWUhQpyLF3BxYBHomcTGtbFRgmouC4deRTCnwELn8upSnR38dNNUcxad7ZzF4uk8nhYFeWGJsPNnIeS5cxf5M24yTddTLsVCi8Xk56IFEfEnchtirVBk7AMdUw9Ja4ooO8Uk1rUosFIdLwLhkhwykIaaVTF7r5R7ZN8w",
        ],
        &["ops_eyJ...", "ops_eyJG0IET7FlqQpal0FcPrcl"],
    ),
    rule(
        "age-secret-key",
        "age secret key",
        &["AGE-SECRET-KEY-1"],
        r"\bAGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}\b",
        T,
        &[
            "# created: 2026\nAGE-SECRET-KEY-18KEJWT4LT9C5U9X8SZ2HU9M5ZS0XKU0CYALMKLX6NG3X9PNFQKW9N76MRK",
            "identity: AGE-SECRET-KEY-1ANG6J2CQGHJ2TX5CK90W5ASVDGGP0GJRQG5US56H98J59QYVP539059JWU",
        ],
        &[
            "recipient: age18lx2zf0eclev87a88gxd9cdu9cz7gx5ax3rax4sp46ug2l7j8k3vmdvuul",
            "AGE-SECRET-KEY-1XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
        ],
    ),
    rule(
        "private-key",
        "PEM or OpenSSH private key (RSA, EC, DSA, OpenSSH, PKCS#8, encrypted, PGP)",
        &["PRIVATE KEY"],
        r"-----BEGIN (?:[A-Z0-9]+ ){0,2}PRIVATE KEY(?: BLOCK)?-----(?:\s|\\[nr]|[A-Za-z-]{1,20}: ?[A-Za-z0-9,-]{1,80})*[A-Za-z0-9+/]{40}",
        Gate::Pem,
        &[
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEXNge2klMgfEj70bVe8OOxeFITUAQsYAvMh1u1XPw689KA5DSNui6pxo0a73D\nSJLYvBGh7urVccxGuN5a4p8aUTvjoBraBoAp/dhrw2HwSVkezInLSci4+qNMd/wf\n-----END RSA PRIVATE KEY-----",
            r#"{"private_key": "-----BEGIN PRIVATE KEY-----\nMIIETAzryb33ozCM2a0hUSGN0G6OWs/mpD7eMpRHBdXxJBL9mFe7N87pZXya1rLp\n-----END PRIVATE KEY-----\n"}"#,
            "key: |\n  -----BEGIN OPENSSH PRIVATE KEY-----\n  b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n  QyNTUxOQAAACA1Fu+1m7DeA5V50bYvxEr23pu8DapokHT4LVVxGo9\n  -----END OPENSSH PRIVATE KEY-----",
            "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,0A942D945A9626757B1B6A87C67A6A0D\n\n3L4vkUFOb3WErzehL+qT+bQ0arsqUARNw8ySu7SgZuN0sJzJZ+v6mbzaIwdZB2j6\n-----END RSA PRIVATE KEY-----",
        ],
        &[
            "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA9qQGiM+B5kWuoSe+F9f1FVhdk+8ZbEA2zJbg37bS\n-----END PUBLIC KEY-----",
            "grep -l 'BEGIN RSA PRIVATE KEY-----' *.pem",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExUYk6cdCPvywjhFPdjXuSCS5wdOe94zeUmCwYeAti9 kevin@host",
        ],
    ),
    // --- Protocols and generic forms ----------------------------------------------------
    rule(
        "jwt",
        "JSON Web Token",
        &["eyJ"],
        r"\beyJ[A-Za-z0-9_-]{8,1000}\.eyJ[A-Za-z0-9_-]{8,2000}\.[A-Za-z0-9_-]{16,1000}",
        T,
        &[
            "id_token=eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIaphVaL0gg-4jeNUDii_8MIm2lPnrwFxNyd2_uVZ5WnHfk9VKkiEuBxnUj2yd.ttponSEfmXXTJ5Pp_8TOGUBrVhPxEOLu3xSuo9-OGwrd_Z6lj9jhy54ygHde-agdq1HzMgYk_p7i8eiiZieTJ9",
            "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJrZXZpbiJ9.gEAlc5ZrdNUwz819P689BsMhpHGLJ7PtKXlntWP_fMk",
        ],
        &[
            "header eyJhbGciOiJIUzI1NiJ9 only",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJrZXZpbiJ9",
        ],
    ),
    rule(
        "database-url",
        "database URL with a password",
        &[
            "postgres",
            "mysql://",
            "mariadb://",
            "mongodb",
            "redis://",
            "rediss://",
            "amqp://",
            "amqps://",
            "mssql://",
            "sqlserver://",
            "clickhouse://",
        ],
        r#"(?i)\b(?:postgres(?:ql)?|mysql|mariadb|mongodb(?:\+srv)?|rediss?|amqps?|mssql|sqlserver|clickhouse)://[^:@/\s"'<>]{0,64}:(?P<secret>[^@\s"'/<>]{3,128})@[A-Za-z0-9._-]+"#,
        Gate::Url,
        &[
            "DATABASE_URL=postgres://app:vQ4EEvDULjTN7cjWISLn@db.internal:5432/app",
            "mongodb+srv://admin:NxFagGzGhIm_ZL8R@cluster0.example.net/?retryWrites=true",
        ],
        &[
            "DATABASE_URL=postgres://app:${DB_PASSWORD}@db:5432/app",
            "postgres://user:password@localhost/db",
        ],
    ),
    rule(
        "url-credentials",
        "URL with embedded credentials",
        &["://"],
        r#"\b[a-zA-Z][a-zA-Z0-9+.-]{1,20}://[^:@/\s"'<>]{1,64}:(?P<secret>[^@\s"'/<>]{3,128})@[A-Za-z0-9.-]+"#,
        Gate::Url,
        &[
            "git clone https://kevin:kbxI6TMj1DI5lpWbnnxtYLQ8@git.internal/repo.git",
            "proxy: http://user:X6uLW4C6tMNeIZWQbf@proxy.corp:3128",
        ],
        &[
            "https://github.com:443/a@b",
            "https://user:<password>@host/path",
        ],
    ),
    rule(
        "bearer-token",
        "Authorization: Bearer token",
        &["bearer"],
        r"(?i)\bbearer\s+(?P<secret>[A-Za-z0-9._~+/-]{20,4096}=*)",
        T,
        &[
            "curl -H 'Authorization: Bearer tJ6dCwX571RdQUiYCv1a5_DGyd4LqQ2Yrvc6i-8M' https://api",
            "\"authorization\": \"bearer 0Nzfdo39Nd3lmgEgA0R0ePltORkrEkI7\"",
        ],
        &[
            "Authorization: Bearer <token>",
            "Authorization: Bearer ${API_TOKEN}",
        ],
    ),
    rule(
        "basic-auth-header",
        "Authorization: Basic credentials",
        &["authorization"],
        r#"(?i)\bauthorization["']?\s*[:=]\s*["']?basic\s+(?P<secret>[A-Za-z0-9+/]{8,1024}={0,2})"#,
        Gate::Basic,
        &[
            "Authorization: Basic a2V2aW46czNjcjN0LXBhc3N3MHJkIQ==",
            "\"Authorization\": \"Basic YWRtaW46UzNjdXJlUGFzcyEyMDI2\"",
        ],
        &[
            "Authorization: Basic dXNlcm5hbWU=",
            "Authorization: Basic <base64 user:pass>",
        ],
    ),
    rule(
        "generic-assignment",
        "password, secret, token or API key assigned a random-looking value",
        &[
            "passw",
            "passphrase",
            "secret",
            "token",
            "api_key",
            "api-key",
            "apikey",
            "private_key",
        ],
        r#"(?i)(?:^|[^A-Za-z0-9])[A-Za-z0-9_.-]{0,30}(?:password|passwd|passphrase|secret|api[_-]?key|apikey|access[_-]?token|auth[_-]?token|private[_-]?key|token)["']?\s{0,4}(?::=|=>|[:=])\s{0,4}["'`]?(?P<secret>[^\s"'`,;]{8,200})"#,
        Gate::Assignment,
        &[
            "DB_PASSWORD=\"h7#Kq2!vLx9\"",
            "  client_secret: X0T5K7kWDqZw9",
        ],
        &[
            "password: ${DB_PASSWORD}",
            "\"prompt_tokens\": 1234, \"token_count\": 99",
        ],
    ),
];

/// Vectors that no rule may match: look-alikes every scanner should leave alone.
pub static NEGATIVES: &[&str] = &[
    "request_id: 123e4567-e89b-12d3-a456-426614174000",
    "commit da39a3ee5e6b4b0d3255bfef95601890afd80709",
    "sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "\"integrity\": \"sha512-z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg==\"",
    "<img src=\"data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==\">",
    "api_key: ${OPENAI_API_KEY}",
    "token: <your-token>",
    "OPENAI_API_KEY=YOUR_API_KEY",
    "api_key = \"sk-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"",
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl kevin@host",
    "recipients: [age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p]",
    "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAu1SU1LfVLPHCozMxH2Mo\n-----END PUBLIC KEY-----",
    "{\"openai\": {\"api_key\": \"+agentbak:vault:agents/kevin/openai:api_key+\"}}",
    "GITHUB_TOKEN=+agentbak:vault:agents/kevin/github:token+",
    "DATABASE_URL=postgres://app:+agentbak:env:DB_PASSWORD+@db:5432/app",
    "password: +agentbak:local:db@3:password+",
    "Authorization: Bearer +agentbak:env:SESSION_TOKEN+",
    "\"prompt_tokens\": 1834, \"completion_tokens\": 211, \"total_tokens\": 2045",
];
