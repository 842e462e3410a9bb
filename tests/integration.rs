//! Klaxon's integration tests: a real Klaxon on 127.0.0.1, real SQLite and
//! PostgreSQL, and the fake Slack of `support`. Run them with `tests/run.sh`,
//! which starts the services they need.

mod support;

mod actions;
mod alert_edge;
mod alerts;
mod architecture;
mod bad_input;
mod big_incidents;
mod binary;
mod deploy;
mod escalation;
mod faults;
mod first_install;
mod heartbeats;
mod hostile;
mod incident_flow;
mod lanes;
mod maintenance;
mod reliability;
mod reminders;
mod restart;
mod scheduler;
mod slack_faults;
mod socket_mode;
mod status_page;
