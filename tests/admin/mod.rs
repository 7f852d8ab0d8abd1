//! The admin REST API against a running wharf over real HTTP: every route's success and error cases, the
//! scope matrix (a tenant admin never reaches another tenant), the audit trail, and a password set through
//! the API used by a real FTPS login, certificates served on their SNI names, disconnects of live sessions.

mod ftps;
mod operations;
mod scopes;
mod tenants;
mod tokens;
mod users;
