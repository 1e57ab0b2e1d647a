//! Microsoft Entra credentials for Event Hubs when no connection string is set, chosen from the
//! standard `AZURE_*` variables the way Azure's own tooling reads them.
//!
//! The choice is pure ([`choose`]); building the credential sends nothing (tokens are fetched
//! when the client first authorizes). Invariant: no secret appears in an error or `Debug`.

use std::path::PathBuf;
use std::sync::Arc;

use azure_core::credentials::{Secret, TokenCredential};
use azure_identity::{
    ClientSecretCredential, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
    UserAssignedId, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};

use crate::config::cloud::CloudEnv;

/// Which credential the environment selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// `AZURE_FEDERATED_TOKEN_FILE` (AKS workload identity), with `AZURE_TENANT_ID` and
    /// `AZURE_CLIENT_ID`.
    Workload {
        tenant_id: String,
        client_id: String,
        token_file: PathBuf,
    },
    /// `AZURE_CLIENT_SECRET` with `AZURE_TENANT_ID` and `AZURE_CLIENT_ID` (a service principal).
    ClientSecret {
        tenant_id: String,
        client_id: String,
    },
    /// Neither: the managed identity of the VM or pod host, user-assigned when `AZURE_CLIENT_ID`
    /// is set.
    Managed { client_id: Option<String> },
}

/// Chooses the credential. Errors name the missing variable.
pub fn choose(env: &CloudEnv) -> Result<Identity, String> {
    let get = |name: &str| env.get(name).map(str::trim).filter(|v| !v.is_empty());
    let need = |name: &str, why: &str| {
        get(name).map(str::to_string).ok_or_else(|| {
            format!("{name} is required with {why} for Event Hubs (or set INGEST_EVENTHUBS_CONNECTION_STRING)")
        })
    };
    if let Some(file) = get("AZURE_FEDERATED_TOKEN_FILE") {
        return Ok(Identity::Workload {
            tenant_id: need("AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE")?,
            client_id: need("AZURE_CLIENT_ID", "AZURE_FEDERATED_TOKEN_FILE")?,
            token_file: PathBuf::from(file),
        });
    }
    if get("AZURE_CLIENT_SECRET").is_some() {
        return Ok(Identity::ClientSecret {
            tenant_id: need("AZURE_TENANT_ID", "AZURE_CLIENT_SECRET")?,
            client_id: need("AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET")?,
        });
    }
    Ok(Identity::Managed {
        client_id: get("AZURE_CLIENT_ID").map(str::to_string),
    })
}

/// Builds the chosen credential.
pub fn credential(env: &CloudEnv) -> Result<Arc<dyn TokenCredential>, String> {
    let identity = choose(env)?;
    let built: azure_core::Result<Arc<dyn TokenCredential>> = match &identity {
        Identity::Workload {
            tenant_id,
            client_id,
            token_file,
        } => WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
            tenant_id: Some(tenant_id.clone()),
            client_id: Some(client_id.clone()),
            token_file_path: Some(token_file.clone()),
            ..Default::default()
        }))
        .map(|c| c as Arc<dyn TokenCredential>),
        Identity::ClientSecret {
            tenant_id,
            client_id,
        } => {
            let secret = env.get("AZURE_CLIENT_SECRET").unwrap_or_default().trim();
            ClientSecretCredential::new(
                tenant_id,
                client_id.clone(),
                Secret::new(secret.to_string()),
                None,
            )
            .map(|c| c as Arc<dyn TokenCredential>)
        }
        Identity::Managed { client_id } => {
            ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                user_assigned_id: client_id.clone().map(UserAssignedId::ClientId),
                ..Default::default()
            }))
            .map(|c| c as Arc<dyn TokenCredential>)
        }
    };
    built.map_err(|e| {
        format!(
            "cannot set up the Microsoft Entra credential ({identity:?}): {e}; check the AZURE_* variables"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> CloudEnv {
        let mut e = CloudEnv::default();
        for (k, v) in pairs {
            e.push(k.to_string(), v.to_string());
        }
        e
    }

    #[test]
    fn a_federated_token_file_means_workload_identity() {
        let chosen = choose(&env(&[
            (
                "AZURE_FEDERATED_TOKEN_FILE",
                "/var/run/secrets/azure/tokens/token",
            ),
            ("AZURE_TENANT_ID", "t"),
            ("AZURE_CLIENT_ID", "c"),
            ("AZURE_CLIENT_SECRET", "ignored when a token file is set"),
        ]));
        assert_eq!(
            chosen,
            Ok(Identity::Workload {
                tenant_id: "t".into(),
                client_id: "c".into(),
                token_file: "/var/run/secrets/azure/tokens/token".into(),
            })
        );
        let missing = choose(&env(&[
            ("AZURE_FEDERATED_TOKEN_FILE", "/t"),
            ("AZURE_CLIENT_ID", "c"),
        ]));
        assert!(missing
            .unwrap_err()
            .starts_with("AZURE_TENANT_ID is required"));
    }

    #[test]
    fn a_client_secret_means_a_service_principal_and_is_never_shown() {
        let e = env(&[
            ("AZURE_CLIENT_SECRET", "s3cret"),
            ("AZURE_TENANT_ID", "t"),
            ("AZURE_CLIENT_ID", "c"),
        ]);
        let chosen = choose(&e).unwrap();
        assert_eq!(
            chosen,
            Identity::ClientSecret {
                tenant_id: "t".into(),
                client_id: "c".into()
            }
        );
        assert!(!format!("{chosen:?}").contains("s3cret"));
        let missing = choose(&env(&[
            ("AZURE_CLIENT_SECRET", "s3cret"),
            ("AZURE_TENANT_ID", "t"),
        ]))
        .unwrap_err();
        assert!(
            missing.starts_with("AZURE_CLIENT_ID is required"),
            "{missing}"
        );
        assert!(!missing.contains("s3cret"));
    }

    #[test]
    fn otherwise_the_hosts_managed_identity() {
        assert_eq!(choose(&env(&[])), Ok(Identity::Managed { client_id: None }));
        assert_eq!(
            choose(&env(&[("AZURE_CLIENT_ID", "user-assigned")])),
            Ok(Identity::Managed {
                client_id: Some("user-assigned".into())
            })
        );
    }

    #[test]
    fn each_choice_builds_without_sending_anything() {
        let token = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(token.path(), "a.projected.token").unwrap();
        for e in [
            env(&[
                ("AZURE_FEDERATED_TOKEN_FILE", token.path().to_str().unwrap()),
                ("AZURE_TENANT_ID", "72f988bf-86f1-41af-91ab-2d7cd011db47"),
                ("AZURE_CLIENT_ID", "c"),
            ]),
            env(&[
                ("AZURE_CLIENT_SECRET", "s"),
                ("AZURE_TENANT_ID", "72f988bf-86f1-41af-91ab-2d7cd011db47"),
                ("AZURE_CLIENT_ID", "c"),
            ]),
            env(&[]),
        ] {
            if let Err(why) = credential(&e) {
                panic!("{e:?}: {why}");
            }
        }
    }
}
