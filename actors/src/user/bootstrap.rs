//! Accounts a node makes at start: the operator's admin, and the demo accounts.
//!
//! - With `admin_email` + `admin_password` configured, that account is created, or its
//!   password reset and the admin role added, at every start.
//! - In demo mode without a configured admin, a demo admin [`DEMO_ADMIN_EMAIL`] with a
//!   generated password and a demo customer [`DEMO_CUSTOMER_EMAIL`] /
//!   [`DEMO_CUSTOMER_PASSWORD`] are created when absent. The demo admin's password exists
//!   only in the line announcing its creation; an existing demo account is left as it is.

use super::{Email, Password, Role, UserError, UserName, Users};

pub const DEMO_ADMIN_EMAIL: &str = "admin@emporium.local";
pub const DEMO_CUSTOMER_EMAIL: &str = "demo@emporium.local";
pub const DEMO_CUSTOMER_PASSWORD: &str = "demo-password";

impl Users {
    /// Set up the start-up accounts. Returns the lines to show the operator (they may hold
    /// a generated password: print them, never log them).
    pub async fn bootstrap(
        &self,
        admin: Option<(&str, &str)>,
        demo: bool,
    ) -> Result<Vec<String>, UserError> {
        let mut lines = Vec::new();
        if let Some((email, password)) = admin {
            let email = Email::parse(email)
                .map_err(|invalid| UserError::Internal(format!("admin_email: {invalid}")))?;
            let user = self
                .ensure_admin(&email, &Password::presented(password))
                .await?;
            tracing::info!(user = %user.id, email = %user.email, "admin account ready");
            return Ok(lines);
        }
        if !demo {
            return Ok(lines);
        }
        let admin_email = demo_email(DEMO_ADMIN_EMAIL)?;
        let generated = uuid::Uuid::new_v4().simple().to_string();
        let admin_password = Password::presented(&generated);
        let roles = vec![Role::Customer, Role::Admin];
        if self
            .create_if_absent(
                &admin_email,
                demo_name("Demo admin")?,
                &admin_password,
                roles,
            )
            .await?
            .is_some()
        {
            lines.push(format!("demo admin: {admin_email} / {generated}"));
        }
        let customer_email = demo_email(DEMO_CUSTOMER_EMAIL)?;
        let customer_password = Password::presented(DEMO_CUSTOMER_PASSWORD);
        self.create_if_absent(
            &customer_email,
            demo_name("Demo customer")?,
            &customer_password,
            vec![Role::Customer],
        )
        .await?;
        lines.push(format!(
            "demo customer: {customer_email} / {DEMO_CUSTOMER_PASSWORD}"
        ));
        Ok(lines)
    }
}

fn demo_email(text: &str) -> Result<Email, UserError> {
    Email::parse(text).map_err(|invalid| UserError::Internal(invalid.to_string()))
}

fn demo_name(text: &str) -> Result<UserName, UserError> {
    UserName::parse(text).map_err(|invalid| UserError::Internal(invalid.to_string()))
}
