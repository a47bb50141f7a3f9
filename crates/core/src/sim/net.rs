//! The simulated network: links from nodes to relays (connect, fail while a relay is down,
//! deliver only on the current connection), latency and jitter, the relays' handling of
//! each op with the faults they inject, and the record of what an observer sees.

use std::time::Duration;

use hush_proto::{FRAME_LEN, MAX_DELETE_IDS, MAX_SECRETS, RelayAddress};
use rand_core::Rng;

use super::{Direction, LATENCY, Msg, Observation, SimLink, World, fail};
use crate::engine::{DepositFailure, Lane, LinkEvent, LinkOp, Time};

fn frames(n: usize, per: usize) -> usize {
    n.div_ceil(per).max(1) * FRAME_LEN
}

impl World {
    /// Puts a message on the network, to arrive at `at` (in sending order among messages
    /// due at the same time).
    pub(super) fn schedule(&mut self, at: Time, msg: Msg) {
        self.seq += 1;
        self.net.insert((at, self.seq), msg);
    }

    pub(super) fn relay_index(&self, addr: &RelayAddress) -> Option<usize> {
        self.relays.iter().position(|r| r.address == *addr)
    }

    /// A node's link takes an op: it connects first if it has no connection, fails it at
    /// once if the relay is down (as a real link does), or sends it.
    pub(super) fn link_send(
        &mut self,
        n: usize,
        addr: &RelayAddress,
        lane: Option<Lane>,
        op: LinkOp,
    ) {
        if matches!(op, LinkOp::Deposit { .. }) {
            self.deposit_attempts.push((self.now, n));
        }
        let Some(r) = self.relay_index(addr) else {
            // A relay that does not exist in this world: unreachable.
            self.fail_offline(n, addr, 0, op);
            return;
        };
        let key = (addr.to_string(), lane);
        // Ending the subscription of a lane that has no link: nothing to send (the driver
        // opens no connection for it either).
        if lane.is_some()
            && !self.nodes[n].links.contains_key(&key)
            && matches!(&op, LinkOp::Subscribe { secrets } if secrets.is_empty())
        {
            return;
        }
        if !self.nodes[n].links.contains_key(&key) {
            self.nodes[n].links.insert(
                key.clone(),
                SimLink {
                    connection: 0,
                    up: false,
                    subscribed: Vec::new(),
                },
            );
            if self.relays[r].up {
                self.connect(n, r, lane, Duration::ZERO);
            } else if lane.is_none() {
                self.send_to_node(n, addr, 0, LinkEvent::Down);
            }
        }
        let link = self.nodes[n]
            .links
            .get_mut(&key)
            .unwrap_or_else(|| fail(&"no link"));
        if let LinkOp::Subscribe { secrets } = &op {
            link.subscribed = secrets.clone();
        }
        if !self.relays[r].up {
            let connection = link.connection;
            self.fail_offline(n, addr, connection, op);
            return;
        }
        let connection = link.connection;
        let at = self.arrival();
        self.schedule(
            at,
            Msg::ToRelay {
                node: n,
                relay: r,
                connection,
                op,
            },
        );
    }

    /// Opens a new connection from node `n` to relay `r` after `delay`: the node hears Up,
    /// and its subscriptions are sent again.
    pub(super) fn connect(&mut self, n: usize, r: usize, lane: Option<Lane>, delay: Duration) {
        let connection = self.next_connection;
        self.next_connection += 1;
        self.connection_node.insert(connection, n);
        let addr = self.relays[r].address.clone();
        let key = (addr.to_string(), lane);
        let Some(link) = self.nodes[n].links.get_mut(&key) else {
            return;
        };
        link.connection = connection;
        link.up = true;
        let subscribed = link.subscribed.clone();
        let at = self.arrival().plus(delay);
        // Only the relay's shared link reports its state, as in the driver.
        if lane.is_none() {
            self.schedule(
                at,
                Msg::ToNode {
                    node: n,
                    relay: addr,
                    connection,
                    ev: LinkEvent::Up,
                },
            );
        }
        if !subscribed.is_empty() {
            self.schedule(
                at,
                Msg::ToRelay {
                    node: n,
                    relay: r,
                    connection,
                    op: LinkOp::Subscribe {
                        secrets: subscribed,
                    },
                },
            );
        }
    }

    pub(super) fn fail_offline(
        &mut self,
        n: usize,
        addr: &RelayAddress,
        connection: u64,
        op: LinkOp,
    ) {
        if let Some(ev) = op.unreachable() {
            self.send_to_node(n, addr, connection, ev);
        }
    }

    pub(super) fn arrival(&mut self) -> Time {
        let jitter = if self.faults.jitter_ms > 0 {
            self.rng.next_u64() % (self.faults.jitter_ms + 1)
        } else {
            0
        };
        self.now.plus(LATENCY + Duration::from_millis(jitter))
    }

    pub(super) fn chance(&mut self, per_mille: u32) -> bool {
        per_mille > 0 && self.rng.next_u32() % 1000 < per_mille
    }

    pub(super) fn send_to_node(
        &mut self,
        n: usize,
        relay: &RelayAddress,
        connection: u64,
        ev: LinkEvent,
    ) {
        if let Some(r) = self.relay_index(relay) {
            self.log.push(Observation {
                at: self.now,
                relay: r,
                connection,
                direction: Direction::ToClient,
                kind: event_kind(&ev),
                bytes: match ev {
                    LinkEvent::Up | LinkEvent::Down | LinkEvent::Resync => 0,
                    _ => FRAME_LEN,
                },
            });
        }
        let at = self.arrival();
        self.schedule(
            at,
            Msg::ToNode {
                node: n,
                relay: relay.clone(),
                connection,
                ev,
            },
        );
    }

    pub(super) fn deliver(&mut self, msg: Msg) {
        match msg {
            Msg::ToNode {
                node,
                relay,
                connection,
                ev,
            } => {
                // What was sent on a connection that has since closed never arrives, but the
                // link's own Up/Down news always does.
                let key = relay.to_string();
                let current = self.nodes[node]
                    .links
                    .iter()
                    .any(|((k, _), l)| *k == key && l.connection == connection);
                if !matches!(ev, LinkEvent::Up | LinkEvent::Down) && !current {
                    return;
                }
                let now = self.node_now(node);
                let Some(engine) = self.nodes[node].engine.as_mut() else {
                    return;
                };
                engine
                    .handle_link_event(now, &relay, ev)
                    .unwrap_or_else(|e| fail(&e));
                self.unpumped.push_back(node);
            }
            Msg::ToRelay {
                node,
                relay,
                connection,
                op,
            } => self.relay_handle(node, relay, connection, op),
        }
    }

    pub(super) fn relay_handle(&mut self, node: usize, r: usize, connection: u64, op: LinkOp) {
        let addr = self.relays[r].address.clone();
        let (kind, bytes) = match &op {
            LinkOp::Deposit { .. } => ("deposit", FRAME_LEN),
            LinkOp::Fetch { secrets, .. } => {
                // A real link fetches drops with a command of their own.
                let drops = secrets
                    .iter()
                    .filter(|s| matches!(s, crate::engine::Opener::Drop(_)))
                    .count();
                if drops > 0 {
                    self.log.push(Observation {
                        at: self.now,
                        relay: r,
                        connection,
                        direction: Direction::ToRelay,
                        kind: "fetch-drops",
                        bytes: frames(drops, MAX_SECRETS),
                    });
                }
                ("fetch", frames(secrets.len() - drops, MAX_SECRETS))
            }
            LinkOp::Delete { ids, .. } => ("delete", frames(ids.len(), MAX_DELETE_IDS)),
            LinkOp::Subscribe { secrets } => ("subscribe", frames(secrets.len(), MAX_SECRETS)),
        };
        self.log.push(Observation {
            at: self.now,
            relay: r,
            connection,
            direction: Direction::ToRelay,
            kind,
            bytes,
        });
        let presented: Vec<_> = match &op {
            LinkOp::Fetch { secrets, .. } | LinkOp::Subscribe { secrets } => secrets
                .iter()
                .map(crate::engine::Opener::mailbox_id)
                .collect(),
            LinkOp::Delete { secret, .. } => vec![secret.mailbox_id()],
            LinkOp::Deposit { .. } => Vec::new(),
        };
        self.presented
            .extend(presented.into_iter().map(|m| (connection, m)));
        if let LinkOp::Deposit {
            target: hush_crypto::Target::Mailbox(id),
            ..
        } = &op
        {
            self.deposited.push((connection, *id));
        }
        if !self.relays[r].up {
            self.fail_offline(node, &addr, connection, op);
            return;
        }
        let now = self.now;
        match op {
            LinkOp::Deposit {
                outbox,
                target,
                envelope,
            } => {
                let (result, pushes) = self.relays[r].deposit(target, envelope, now);
                let result = match result {
                    Ok(()) if self.chance(self.faults.drop_deposit_ack) => {
                        Err(DepositFailure::Transport)
                    }
                    other => other,
                };
                self.send_to_node(
                    node,
                    &addr,
                    connection,
                    LinkEvent::Deposited { outbox, result },
                );
                for (to, conn, ev) in pushes {
                    if self.chance(self.faults.drop_push) {
                        continue;
                    }
                    if self.chance(self.faults.duplicate_push) {
                        self.send_to_node(to, &addr, conn, ev.clone());
                    }
                    self.send_to_node(to, &addr, conn, ev);
                }
            }
            LinkOp::Fetch { token, secrets } => {
                for ev in self.relays[r].fetch(&secrets, now) {
                    self.send_to_node(node, &addr, connection, ev);
                }
                self.send_to_node(
                    node,
                    &addr,
                    connection,
                    LinkEvent::FetchDone { token, ok: true },
                );
            }
            LinkOp::Delete { secret, ids } => {
                self.relays[r].delete(&secret, &ids);
                self.send_to_node(node, &addr, connection, LinkEvent::Deleted);
            }
            LinkOp::Subscribe { secrets } => {
                self.relays[r].subscribe(node, connection, &secrets);
            }
        }
    }
}

fn event_kind(ev: &LinkEvent) -> &'static str {
    match ev {
        LinkEvent::Up => "connected",
        LinkEvent::Down => "disconnected",
        LinkEvent::Deposited { .. } => "deposited",
        LinkEvent::Delivery { .. } => "envelope",
        LinkEvent::FetchDone { .. } => "fetch-done",
        LinkEvent::Deleted => "deleted",
        LinkEvent::Resync => "resync",
    }
}
