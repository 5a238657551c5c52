//! Starting and stopping a service's health checks, and what the loop does with their
//! events.

use tokio::task::AbortHandle;

use super::{safety, Daemon};
use crate::config::ServiceConfig;
use crate::health::checker::Health;
use crate::health::task::HealthEvent;

/// A running check task and what it was started with (a reload compares against it).
pub(super) struct ServiceHandle {
    pub(super) config: ServiceConfig,
    pub(super) password: Option<String>,
    pub(super) task: AbortHandle,
}

impl Daemon {
    pub(super) fn start_service(&mut self, service: &ServiceConfig, password: Option<String>) {
        let task = self.health.add(
            self.next_index,
            service,
            password.clone(),
            self.events.clone(),
        );
        self.next_index += 1;
        let task = self.checks.spawn(task);
        self.up.insert(service.name.clone(), Health::Unknown);
        self.safety
            .add(service, self.guard_store.load(&service.name));
        self.counts.entry(service.name.clone()).or_default();
        self.services.insert(
            service.name.clone(),
            ServiceHandle {
                config: service.clone(),
                password,
                task,
            },
        );
    }

    pub(super) fn stop_service(&mut self, name: &str) {
        if let Some(s) = self.services.remove(name) {
            self.retired.insert(s.task.id());
            s.task.abort();
        }
        self.health.remove(name);
        self.safety.remove(name);
        self.up.remove(name);
        self.counts.remove(name);
    }

    pub(super) fn health_event(&mut self, ev: HealthEvent) {
        // Events of a task retired by a reload may still be queued: only current ones count.
        if !self.services.contains_key(&ev.name) {
            return;
        }
        let before = self.up.insert(ev.name.clone(), ev.health);
        if before != Some(ev.health) {
            self.counts.entry(ev.name.clone()).or_default().transitions += 1;
        }
        self.safety.set_health(&ev.name, ev.health, &ev.reason);
        self.safety
            .set_facts(&ev.name, ev.facts.as_ref().map(safety::Facts::from));
        self.decide(None);
    }
}
