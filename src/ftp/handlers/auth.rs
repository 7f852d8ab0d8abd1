//! Login and security: RFC 959 §4.1.1 (USER, PASS, REIN), RFC 4217 §4-§9 (AUTH TLS, PBSZ, PROT, CCC) and
//! RFC 7151 (HOST).

use std::io;
use std::time::Duration;

use crate::auth::{LoginAttempt, LoginError, Principal};
use crate::directory::{DirectoryError, TlsVersion};
use crate::ftp::command::Prot;
use crate::ftp::error;
use crate::ftp::reply::Reply;
use crate::ftp::session::{Flow, Login, Session};
use crate::sessions::Registration;
use crate::storage::ErrorKind;
use crate::telemetry::metrics::LoginResult;
use crate::vfs::{UserView, ViewError, ViewOwner, VirtualPath};

pub(super) async fn user(s: &mut Session, name: String) -> io::Result<Flow> {
    if s.login.is_some() {
        s.send(&Reply::new(530, "Already logged in; send REIN to change user")).await?;
        return Ok(Flow::Continue);
    }
    // A refused USER must not leave an earlier accepted one for PASS to complete.
    s.pending_user = None;
    // The tenant's TLS policy may refuse (or, in plaintext, allow) this connection: decide before the client
    // sends its password. Over TLS 1.3 no policy can refuse, so that common case costs no lookup.
    let negotiated = s.control.tls_version();
    if negotiated != Some(TlsVersion::Tls13) {
        let tenant = match s.shared.auth.resolve(&name, s.host_tenant.as_ref(), s.sni.as_deref()).await {
            Ok(named) => named.map(|(tenant, _)| tenant),
            Err(e) => return unavailable(s, &e).await,
        };
        let mut policy = s.policy();
        if let Some(tenant) = &tenant {
            policy = policy.with_tenant(&tenant.tls);
        }
        if let Some(why) = policy.login_refusal(negotiated) {
            s.send(&Reply::new(530, why)).await?;
            return Ok(Flow::Continue);
        }
    }
    s.pending_user = Some(name);
    s.send(&Reply::new(331, "Password required")).await?;
    Ok(Flow::Continue)
}

pub(super) async fn pass(s: &mut Session, password: String) -> io::Result<Flow> {
    if s.login.is_some() {
        s.send(&Reply::new(503, "Already logged in")).await?;
        return Ok(Flow::Continue);
    }
    let Some(name) = s.pending_user.take() else {
        s.send(&Reply::new(503, "Send USER first")).await?;
        return Ok(Flow::Continue);
    };
    let attempt = LoginAttempt {
        login: &name,
        host_tenant: s.host_tenant.as_ref(),
        sni: s.sni.as_deref(),
        password: &password,
        client: s.peer.ip(),
    };
    match s.shared.auth.login(attempt, &s.shared.config().login_defence).await {
        Ok(principal) => {
            // The tenant is certain only now (USER checked the one the login named).
            let policy = s.policy().with_tenant(&principal.tenant.tls);
            if let Some(why) = policy.login_refusal(s.control.tls_version()) {
                tracing::info!(
                    target: "wharf::login",
                    peer = %s.peer,
                    tenant = %principal.tenant.name,
                    user = %principal.user.username,
                    result = "tls_policy",
                    "login"
                );
                s.shared.metrics.login(LoginResult::TlsPolicy, Some(&principal.tenant.name));
                s.send(&Reply::new(530, why)).await?;
                return Ok(Flow::Continue);
            }
            let (view, live) = match start_session(s, &principal).await {
                Ok(started) => started,
                Err(refusal) => {
                    s.shared.metrics.login(refusal.result, Some(&principal.tenant.name));
                    s.send(&refusal.reply).await?;
                    return Ok(refusal.flow);
                }
            };
            tracing::info!(
                target: "wharf::login",
                session = %live.id,
                peer = %s.peer,
                tenant = %principal.tenant.name,
                user = %principal.user.username,
                result = "ok",
                "login"
            );
            s.span.record("tenant", principal.tenant.name.as_str());
            s.span.record("user", principal.user.username.as_str());
            s.span.record("session", live.id.as_str());
            s.shared.metrics.login(LoginResult::Ok, Some(&principal.tenant.name));
            let counted = s.shared.metrics.logged_in();
            s.owner.set_user(principal.tenant.id, principal.user.id);
            s.login = Some(Login { principal, view, live, _counted: counted });
            s.cwd = VirtualPath::root();
            s.failed_logins = 0;
            s.send(&Reply::new(230, "Login successful")).await?;
            Ok(Flow::Continue)
        }
        Err(LoginError::Rejected) => {
            s.failed_logins += 1;
            tracing::info!(target: "wharf::login", peer = %s.peer, login = %name, result = "rejected", "login");
            s.shared.metrics.login(LoginResult::Rejected, None);
            if s.failed_logins >= s.shared.config().ftp.max_login_attempts {
                s.send(&Reply::new(421, "Too many failed logins; closing control connection")).await?;
                return Ok(Flow::Close);
            }
            s.send(&Reply::new(530, "Login incorrect")).await?;
            Ok(Flow::Continue)
        }
        Err(LoginError::Unavailable(e)) => {
            s.shared.metrics.login(LoginResult::Unavailable, None);
            unavailable(s, &e).await
        }
    }
}

/// Why a verified login still does not become a session: the metric it counts as, the reply, and
/// whether the connection goes on.
struct Refusal {
    result: LoginResult,
    reply: Reply,
    flow: Flow,
}

/// What a session needs besides its principal: its view of the tenant's storage (opened for the user,
/// with the user's home made if missing) and its row among the live sessions (no row, no session: every
/// logged-in session can be disconnected).
async fn start_session(s: &Session, principal: &Principal) -> Result<(UserView, Registration), Refusal> {
    let refused = |result, reply| Refusal { result, reply, flow: Flow::Continue };
    let storage = s
        .shared
        .storage
        .open(&principal.tenant.storage_owner(), principal.user.id)
        .await
        .map_err(|e| refused(LoginResult::Error, error::storage_reply(&e, "opening the tenant's storage")))?;
    // The directory only stores homes that resolve; one that does not is refused, never widened.
    let Ok(home) = VirtualPath::root().resolve(&principal.user.home) else {
        tracing::error!(user = %principal.user.username, tenant = %principal.tenant.name, "home does not resolve");
        return Err(refused(LoginResult::Error, Reply::new(530, "Login incorrect")));
    };
    let owner = ViewOwner {
        tenant_id: principal.tenant.id,
        user_id: principal.user.id,
        access: principal.user.access.clone(),
        quotas: s.shared.quotas.clone(),
        limited: principal.quota_limited,
    };
    let view = UserView::new(storage, home, owner);
    view.ensure_home().await.map_err(|e| {
        let reply = match &e {
            ViewError::Storage(e) if e.kind() == ErrorKind::NotADirectory => {
                Reply::new(550, "Home directory is a file; ask your administrator")
            }
            e => error::view_reply(e, "opening the home directory"),
        };
        refused(LoginResult::Error, reply)
    })?;
    let live = s.shared.sessions.register(principal, s.peer).await.map_err(|e| Refusal {
        result: LoginResult::Unavailable,
        reply: error::directory_reply(&e),
        flow: Flow::Close,
    })?;
    Ok((view, live))
}

async fn unavailable(s: &mut Session, e: &DirectoryError) -> io::Result<Flow> {
    s.send(&error::directory_reply(e)).await?;
    Ok(Flow::Close)
}

/// AUTH TLS: 234, then the handshake. Anything the client sent after the command in plaintext is
/// discarded, so it cannot pass for data sent under TLS (the STARTTLS injection attack).
pub(super) async fn auth_tls(s: &mut Session) -> io::Result<Flow> {
    if s.control.is_tls() {
        s.send(&Reply::new(503, "TLS is already active")).await?;
        return Ok(Flow::Continue);
    }
    s.send(&Reply::new(234, "AUTH TLS successful; start the TLS handshake")).await?;
    if s.lines.has_buffered() {
        tracing::warn!(peer = %s.peer, "discarding plaintext sent after AUTH TLS");
        s.lines.clear();
    }
    let timeout = Duration::from_secs(s.shared.config().ftp.login_timeout_secs);
    match s.start_tls(timeout).await {
        Ok(()) => Ok(Flow::Continue),
        Err(e) => {
            tracing::info!(peer = %s.peer, error = %e, "TLS handshake on the control connection failed");
            Ok(Flow::Close)
        }
    }
}

pub(super) fn pbsz(s: &mut Session) -> Reply {
    if !s.control.is_tls() {
        return Reply::new(503, "PBSZ needs a TLS control connection (AUTH TLS first)");
    }
    s.pbsz = true;
    Reply::new(200, "PBSZ=0")
}

pub(super) fn prot(s: &mut Session, level: Prot) -> Reply {
    if !s.control.is_tls() {
        return Reply::new(503, "PROT needs a TLS control connection (AUTH TLS first)");
    }
    if !s.pbsz {
        return Reply::new(503, "Send PBSZ 0 before PROT (RFC 4217 section 9)");
    }
    match level {
        Prot::Private => {
            s.prot_private = true;
            Reply::new(200, "Protection level set to Private")
        }
        Prot::Clear if s.policy().require_prot_p => {
            Reply::new(534, "PROT C refused by policy: data connections must be encrypted")
        }
        Prot::Clear => {
            s.prot_private = false;
            Reply::new(200, "Protection level set to Clear")
        }
        Prot::Safe | Prot::Confidential => Reply::new(536, "Only PROT C and PROT P are supported"),
    }
}

pub(super) fn rein(s: &mut Session) -> Reply {
    s.reset();
    Reply::new(220, "Session reset; ready for a new user")
}

/// HOST (RFC 7151): picks the tenant by hostname before login.
pub(super) async fn host(s: &mut Session, host: &str) -> Reply {
    if s.login.is_some() || s.pending_user.is_some() {
        return Reply::new(503, "HOST must come before USER");
    }
    let host = host.trim();
    let literal = host.starts_with('[') || host.parse::<std::net::IpAddr>().is_ok();
    if literal {
        s.host_tenant = None;
        return Reply::new(220, "Host accepted");
    }
    match s.shared.auth.tenant_for_host(host).await {
        Ok(Some(tenant)) => {
            s.host_tenant = Some(tenant);
            Reply::new(220, "Host accepted")
        }
        Ok(None) => Reply::new(504, "Unknown host"),
        Err(e) => error::directory_reply(&e),
    }
}
