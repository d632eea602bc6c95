//! The controller's own login to Vault/OpenBao: Kubernetes (JWT) auth of its ServiceAccount
//! (`--vault-kubernetes-role`). For each server a file names (and `SOPS_HC_VAULT_ALLOWLIST`
//! lists), it asks the API server for a short-lived token of its ServiceAccount (TokenRequest,
//! for the configured audience), logs in at `auth/<mount>/login` with it and keeps the client
//! token Vault gives until three quarters of its TTL have passed, so a reconcile normally costs
//! no login. Used only with the controller's key Secret (never for a namespace key Secret: it is
//! the controller's identity) and only when that Secret has no `sops.vault-token` entry.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use enseal_sops::keys::hc_vault::{VaultError, VaultTokenSource, VaultTransit};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{ObjectMeta, PostParams};
use kube::Api;
use zeroize::Zeroizing;

/// The TokenRequest API's shortest lifetime: the JWT is used once, for the login.
const JWT_SECONDS: i64 = 600;
/// How long the API server may take to give a token before the decryption gives up.
const TOKEN_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// What `--vault-kubernetes-*` configure.
#[derive(Clone, Debug)]
pub struct KubernetesAuthConfig {
    pub role: String,
    pub mount: String,
    /// The JWT's audience (the role's `audience`); `None`: the API server's default.
    pub audience: Option<String>,
    /// The ServiceAccount, in the controller's namespace.
    pub service_account: String,
}

/// Logs in per server and keeps the client tokens.
pub struct KubernetesAuth {
    config: KubernetesAuthConfig,
    service_accounts: Api<ServiceAccount>,
    /// The controller's runtime: decryptions run on threads of their own, which wait here for
    /// the TokenRequest.
    runtime: tokio::runtime::Handle,
    /// Per server address: the client token and when to log in again (`None`: never).
    tokens: Mutex<HashMap<String, HeldToken>>,
}

/// A client token and when to log in again (`None`: never).
type HeldToken = (Zeroizing<String>, Option<Instant>);

impl KubernetesAuth {
    pub fn new(
        config: KubernetesAuthConfig,
        service_accounts: Api<ServiceAccount>,
        runtime: tokio::runtime::Handle,
    ) -> KubernetesAuth {
        KubernetesAuth {
            config,
            service_accounts,
            runtime,
            tokens: Mutex::default(),
        }
    }

    /// A fresh JWT of the ServiceAccount for the configured audience.
    fn service_account_jwt(&self) -> Result<Zeroizing<String>, String> {
        let request = TokenRequest {
            metadata: ObjectMeta::default(),
            spec: Some(TokenRequestSpec {
                audiences: self.config.audience.clone().map(|a| vec![a]),
                expiration_seconds: Some(JWT_SECONDS),
                ..TokenRequestSpec::default()
            }),
            status: None,
        };
        let name = &self.config.service_account;
        // The timer is made inside the runtime: this thread has no runtime context of its own.
        let asked = self.runtime.block_on(async {
            tokio::time::timeout(
                TOKEN_REQUEST_TIMEOUT,
                self.service_accounts
                    .create_token_request(name, &PostParams::default(), &request),
            )
            .await
        });
        let answer = match asked {
            Err(_) => {
                return Err(format!(
                    "the API server gave no token of ServiceAccount {name:?} within {}s",
                    TOKEN_REQUEST_TIMEOUT.as_secs()
                ));
            }
            Ok(Err(e)) => {
                return Err(format!(
                    "cannot get a token of ServiceAccount {name:?} (TokenRequest): {e}"
                ));
            }
            Ok(Ok(answer)) => answer,
        };
        answer
            .status
            .and_then(|s| s.token)
            .filter(|t| !t.is_empty())
            .map(Zeroizing::new)
            .ok_or_else(|| format!("the TokenRequest for ServiceAccount {name:?} gave no token"))
    }
}

/// When to log in again: after three quarters of the token's TTL, so a token is never used
/// near its end (a decryption may take a while, clocks may differ).
fn renew_at(now: Instant, ttl: Option<Duration>) -> Option<Instant> {
    ttl.map(|ttl| now + ttl * 3 / 4)
}

impl VaultTokenSource for KubernetesAuth {
    fn token_for(
        &self,
        vault: &VaultTransit,
        address: &str,
    ) -> Result<Zeroizing<String>, VaultError> {
        // Held across the login: decryptions of several files at start wait for one login
        // rather than each making its own.
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if let Some((token, renew)) = tokens.get(address) {
            if renew.is_none_or(|at| now < at) {
                return Ok(token.clone());
            }
        }
        let jwt = self
            .service_account_jwt()
            .map_err(|reason| VaultError::Login {
                address: address.to_string(),
                reason,
            })?;
        let login = vault.login_kubernetes(address, &self.config.mount, &self.config.role, &jwt)?;
        tracing::info!(
            address = %address,
            mount = %self.config.mount,
            role = %self.config.role,
            ttl_s = login.ttl.map(|t| t.as_secs()),
            "logged in to Vault with the controller's ServiceAccount"
        );
        tokens.insert(
            address.to_string(),
            (login.token.clone(), renew_at(now, login.ttl)),
        );
        Ok(login.token)
    }

    fn refused(&self, address: &str) {
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens.remove(address);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-hour token is used for 45 minutes; one without a TTL until it is refused.
    #[test]
    fn a_token_is_kept_for_three_quarters_of_its_ttl() {
        let now = Instant::now();
        assert_eq!(
            renew_at(now, Some(Duration::from_secs(3600))),
            Some(now + Duration::from_secs(2700))
        );
        assert_eq!(renew_at(now, None), None);
    }
}
