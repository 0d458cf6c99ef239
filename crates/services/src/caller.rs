//! Who asks: a name and a role, as the edge authenticated them. Services record it (audit,
//! case timelines) and check roles with it.

use chargeops_core::Role;

use crate::Error;

#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub role: Role,
    /// The field crew a `crew` token acts for.
    pub crew_id: Option<String>,
}

impl Caller {
    /// Operators and admins change the network (stations, chargers, commands, id tags);
    /// everyone else only reads it. What agents, dispatchers and crews may do to cases is
    /// decided by the operations service.
    pub fn require_write(&self) -> Result<(), Error> {
        match self.role {
            Role::Admin | Role::Operator => Ok(()),
            Role::Viewer | Role::Agent | Role::Dispatcher | Role::Crew => Err(Error::forbidden()),
        }
    }

    /// Passes when the caller's role is one of `roles`.
    pub fn require_role(&self, roles: &[Role]) -> Result<(), Error> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(Error::forbidden())
        }
    }
}
