//! Direct reads: the host watches the worker channels itself and reads a reply on its own
//! thread (one wake-up per reply instead of two). This is the engine's side: handing the host
//! the channels, switching the I/O thread's reads off and on, reading a channel on the host's
//! thread, and taking the reads back from a stalled host (`revoke_direct`, called by the
//! housekeeping). When is [`crate::direct_policy`]'s.

use std::collections::HashSet;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;

use std::sync::Arc;

use super::cycle::{lock, Shared, State};
use super::io::Read;
use super::Engine;
use crate::scheduler::WorkerId;

impl State {
    /// The host stalled: the I/O thread reads every channel from now on.
    pub(crate) fn revoke_direct(&mut self, shared: &Arc<Shared>) {
        self.direct = false;
        self.direct_check_at = None;
        shared.direct_revoked.store(true, Ordering::Release);
        let ws: Vec<WorkerId> = self.conns.keys().copied().collect();
        for w in ws {
            self.start_reading(shared, w);
        }
    }
}

impl Engine {
    /// With `on`, the I/O thread stops watching the worker channels for replies: the host
    /// watches them (the descriptors from [`Engine::channels`]) and calls
    /// [`Engine::read_direct`] when one is readable, so a reply wakes only the host's thread.
    /// Exits, timers and blocked writes stay with the I/O thread, and while jobs are queued
    /// it checks that the host keeps reading (see [`crate::direct_policy`]): a stalled host
    /// loses the reads ([`Engine::direct_revoked`]).
    pub fn set_direct(&self, on: bool) {
        self.shared.update(|st, shared| {
            if st.direct == on {
                return;
            }
            st.direct = on;
            st.host_read_at = st.sched.now();
            if !on {
                st.direct_check_at = None;
            }
            let ws: Vec<WorkerId> = st.conns.keys().copied().collect();
            for w in ws {
                if on {
                    if let Some(r) = st.conns.get_mut(&w).and_then(|c| c.reader.take()) {
                        r.abort();
                    }
                } else {
                    // Registration reports a channel that is readable already.
                    st.start_reading(shared, w);
                }
            }
        });
    }

    /// Whether the I/O thread took the reads back from a stalled host (see
    /// [`crate::direct_policy`]) since the last call: the host must then stop watching the
    /// channels (direct mode is already off), and may ask for it again later.
    pub fn direct_revoked(&self) -> bool {
        self.shared.direct_revoked.load(Ordering::Relaxed)
            && self.shared.direct_revoked.swap(false, Ordering::AcqRel)
    }

    /// Changes whenever a worker channel opens or closes.
    pub fn channels_generation(&self) -> u64 {
        self.shared.channels_gen.load(Ordering::Acquire)
    }

    /// The open worker channels: every worker's id, and a duplicate descriptor of the channel
    /// of each worker not in `known` (the caller owns it).
    pub fn channels(&self, known: &HashSet<WorkerId>) -> (Vec<WorkerId>, Vec<(WorkerId, OwnedFd)>) {
        let st = lock(&self.shared.state);
        let mut live = Vec::with_capacity(st.conns.len());
        let mut fresh = Vec::new();
        for (w, conn) in &st.conns {
            live.push(*w);
            if !known.contains(w) {
                // Duplicated under the lock: the channel cannot close meanwhile.
                if let Ok(fd) = conn.link.fd().try_clone_to_owned() {
                    fresh.push((*w, fd));
                }
            }
        }
        (live, fresh)
    }

    /// Reads worker `w`'s channel now, on the calling (host) thread, as the I/O thread would:
    /// replies are matched and the next queued jobs written. Returns whether records are
    /// waiting, for the host to take at once (it is not woken for them as well), and whether
    /// the channel is still open (a closed one needs no more watching).
    pub fn read_direct(&self, w: WorkerId) -> (bool, bool) {
        self.shared.update_on_host(|st, shared| {
            st.host_read_at = st.sched.now();
            let open =
                st.conns.contains_key(&w) && !matches!(st.read_channel(shared, w), Read::Closed);
            (st.outbox.count > 0, open)
        })
    }
}
