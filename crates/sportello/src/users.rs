//! `sportello user …` and `sportello token …` (CONTRACT §4, §8.6): the users of the back
//! office and the API, their passwords and tokens. Every change is recorded in the
//! security log with the address `cli`; revocations reach every instance at once through
//! the store's `auth_version` counter.

use std::process::ExitCode;

use clap::Subcommand;
use sportello_config::Config;
use sportello_domain::roles::Role;
use sportello_domain::security::SecurityEventKind;
use sportello_store::security::SecurityEvent;
use sportello_store::{Store, StoreError};

use crate::app::{UsageError, open_store};

/// The longest life `token new --expires-days` gives a token (ten years).
const MAX_EXPIRES_DAYS: u32 = 3650;

/// `sportello user …`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Creates a user; prints its password and an API token once.
    Add {
        /// Login name (lower-case letters, digits, '.', '_', '-').
        login: String,
        /// admin, supervisor, operator, police or integration.
        #[arg(long)]
        role: String,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
    },
    /// Lists the users: login, role, active, last sign-in, live tokens (one per line).
    List,
    /// Disables a user: their sessions and tokens stop working at once, everywhere.
    Disable {
        /// Login name.
        login: String,
    },
    /// Enables a disabled user again.
    Enable {
        /// Login name.
        login: String,
    },
    /// Gives a user a new password (printed once) and ends their sessions.
    ResetPassword {
        /// Login name.
        login: String,
    },
    /// Removes a user's second factor (a lost phone); they set up a new one at sign-in.
    RemoveSecondFactor {
        /// Login name.
        login: String,
    },
}

/// `sportello token …`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Issues a new API token for a user; prints it once.
    New {
        /// Login name.
        login: String,
        /// Days the token stays valid (default: until revoked).
        #[arg(long, value_name = "N")]
        expires_days: Option<u32>,
    },
    /// Revokes every API token of a user, at once on every instance.
    Revoke {
        /// Login name.
        login: String,
    },
}

/// An unknown login or bad value is a usage error (exit 2), naming it.
fn usage(e: StoreError) -> anyhow::Error {
    match e {
        StoreError::NotFound(what) => UsageError(format!("unknown {what}")).into(),
        StoreError::Invalid { field, message } => UsageError(format!("{field}: {message}")).into(),
        StoreError::Conflict(message) => UsageError(message).into(),
        other => other.into(),
    }
}

/// Records a change made from the command line.
async fn record(store: &Store, kind: SecurityEventKind, login: &str, detail: &str) {
    let event = SecurityEvent::new(store.clock().now(), kind, Some(login), "cli", detail);
    if let Err(e) = store.record_security_event(&event).await {
        eprintln!("warning: the security log could not record this change: {e}");
    }
}

/// `sportello user …`.
pub async fn user(config: &Config, command: UserCommand) -> anyhow::Result<ExitCode> {
    if let UserCommand::Add { login, role, name } = &command {
        return user_add(config, login, role, name.as_deref()).await;
    }
    let store = open_store(config).await?;
    let result = user_change(&store, command).await;
    store.close().await;
    result
}

async fn user_change(store: &Store, command: UserCommand) -> anyhow::Result<ExitCode> {
    match command {
        UserCommand::Add { .. } => Ok(ExitCode::SUCCESS),
        UserCommand::List => {
            let users = store.list_users().await?;
            println!(
                "{:<24} {:<12} {:<6} {:<25} TOKENS",
                "LOGIN", "ROLE", "ACTIVE", "LAST_SIGN_IN"
            );
            for u in users {
                println!(
                    "{:<24} {:<12} {:<6} {:<25} {}",
                    u.login,
                    u.role.as_str(),
                    if u.active { "yes" } else { "no" },
                    u.last_sign_in.map_or_else(
                        || "-".to_owned(),
                        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    ),
                    u.live_tokens
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        UserCommand::Disable { login } => {
            let changed = store.set_user_active(&login, false).await.map_err(usage)?;
            record(
                store,
                SecurityEventKind::UserDisabled,
                &login,
                "disabled from the command line",
            )
            .await;
            println!(
                "user {login} {}: their sessions and tokens no longer work",
                if changed {
                    "disabled"
                } else {
                    "was already disabled"
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        UserCommand::Enable { login } => {
            let changed = store.set_user_active(&login, true).await.map_err(usage)?;
            record(
                store,
                SecurityEventKind::UserEnabled,
                &login,
                "enabled from the command line",
            )
            .await;
            println!(
                "user {login} {}",
                if changed {
                    "enabled"
                } else {
                    "was already enabled"
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        UserCommand::RemoveSecondFactor { login } => {
            store.remove_second_factor(&login).await.map_err(usage)?;
            record(
                store,
                SecurityEventKind::SecondFactorChanged,
                &login,
                "second factor removed from the command line",
            )
            .await;
            println!("second factor of {login} removed");
            Ok(ExitCode::SUCCESS)
        }
        UserCommand::ResetPassword { login } => {
            let password = store.reset_password(&login).await.map_err(usage)?;
            record(
                store,
                SecurityEventKind::PasswordReset,
                &login,
                "password reset from the command line; sessions ended",
            )
            .await;
            println!("login: {login}");
            println!("password: {password}");
            eprintln!(
                "Keep it now: it is stored hashed and cannot be shown again. Their sessions have ended."
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `sportello token …`.
pub async fn token(config: &Config, command: TokenCommand) -> anyhow::Result<ExitCode> {
    if let TokenCommand::New {
        expires_days: Some(days),
        ..
    } = command
        && !(1..=MAX_EXPIRES_DAYS).contains(&days)
    {
        return Err(UsageError(format!("--expires-days: use 1 to {MAX_EXPIRES_DAYS} days")).into());
    }
    let store = open_store(config).await?;
    let result = token_change(&store, command).await;
    store.close().await;
    result
}

async fn token_change(store: &Store, command: TokenCommand) -> anyhow::Result<ExitCode> {
    match command {
        TokenCommand::New {
            login,
            expires_days,
        } => {
            let expires =
                expires_days.map(|d| store.clock().now() + chrono::Duration::days(i64::from(d)));
            let token = store
                .create_token(&login, "issued from the command line", expires)
                .await
                .map_err(usage)?;
            let until = expires.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            record(
                store,
                SecurityEventKind::TokenCreated,
                &login,
                &match &until {
                    Some(t) => format!("issued from the command line, valid until {t}"),
                    None => "issued from the command line, valid until revoked".to_owned(),
                },
            )
            .await;
            println!("login: {login}");
            println!("token: {token}");
            if let Some(t) = until {
                println!("expires: {t}");
            }
            eprintln!("Keep it now: it is stored hashed and cannot be shown again.");
            Ok(ExitCode::SUCCESS)
        }
        TokenCommand::Revoke { login } => {
            let n = store.revoke_tokens(&login).await.map_err(usage)?;
            record(
                store,
                SecurityEventKind::TokenRevoked,
                &login,
                &format!("{n} token(s) revoked from the command line"),
            )
            .await;
            println!("{n} token(s) of {login} revoked");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `sportello user add`.
async fn user_add(
    config: &Config,
    login: &str,
    role: &str,
    name: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let role = Role::parse(role).ok_or_else(|| {
        UsageError(format!(
            "unknown role '{role}' (allowed: admin, supervisor, operator, police, integration)"
        ))
    })?;
    let store = open_store(config).await?;
    let secrets = match store.add_user(login, name.unwrap_or(login), role).await {
        Ok(s) => s,
        Err(StoreError::Invalid { field, message }) => {
            store.close().await;
            return Err(UsageError(format!("{field}: {message}")).into());
        }
        Err(e) => {
            store.close().await;
            return Err(e.into());
        }
    };
    record(
        &store,
        SecurityEventKind::UserAdded,
        login,
        &format!(
            "added from the command line with the role {}",
            role.as_str()
        ),
    )
    .await;
    store.close().await;
    println!("login: {login}");
    println!("role: {}", role.as_str());
    println!("password: {}", secrets.password);
    println!("token: {}", secrets.token);
    eprintln!(
        "Keep these now: the password and the token are stored hashed and cannot be shown again."
    );
    Ok(ExitCode::SUCCESS)
}
