//! Proves the OpenBao wiring: a real dev server, a KV v2 write and read through vaultrs.

use crate::common;
use std::collections::HashMap;

use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};

#[test]
fn kv2_write_then_read_through_vaultrs() {
    let bao = common::OpenBao::start();
    let client = VaultClient::new(
        VaultClientSettingsBuilder::default()
            .address(&bao.addr)
            .token(&bao.token)
            .build()
            .unwrap(),
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let data = HashMap::from([("api_key".to_string(), "smoke-value-1".to_string())]);
        vaultrs::kv2::set(&client, "secret", "agents/smoke", &data)
            .await
            .unwrap();
        let data2 = HashMap::from([("api_key".to_string(), "smoke-value-2".to_string())]);
        let meta = vaultrs::kv2::set(&client, "secret", "agents/smoke", &data2)
            .await
            .unwrap();
        assert_eq!(meta.version, 2);
        let read: HashMap<String, String> = vaultrs::kv2::read(&client, "secret", "agents/smoke")
            .await
            .unwrap();
        assert_eq!(read["api_key"], "smoke-value-2");
        let old: HashMap<String, String> =
            vaultrs::kv2::read_version(&client, "secret", "agents/smoke", 1)
                .await
                .unwrap();
        assert_eq!(old["api_key"], "smoke-value-1");
    });
    // The CLI sees the same data: the harness drives the real server.
    let out = bao.cli(&["kv", "get", "-field=api_key", "secret/agents/smoke"]);
    assert_eq!(out.trim(), "smoke-value-2");
}
