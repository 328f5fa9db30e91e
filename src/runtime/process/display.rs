//! Display and port allocation: finding a free X display `N` in the configured range (free
//! on the host and its VNC port bindable), reserving it while it is launched or torn down
//! ([`Reservation`]), and the display-to-port mapping.
//!
//! Not here: the X lock files a display's freedom is read from (`files`), launching the
//! server on it (`launch`).

use std::collections::{HashMap, HashSet};

use anyhow::anyhow;
use uuid::Uuid;

use super::{ProcessRuntime, Running, files::display_free_on_host};

impl ProcessRuntime {
    /// Marks `display` as taken until the returned guard drops.
    pub(super) fn reserve(&self, display: u32) -> Reservation<'_> {
        lock_set(&self.reserved).insert(display);
        Reservation {
            set: &self.reserved,
            display,
        }
    }

    /// Finds and reserves a free display, skipping `skip`. `live` must be the locked map.
    pub(super) fn reserve_free_display(
        &self,
        live: &HashMap<Uuid, Running>,
        skip: &HashSet<u32>,
    ) -> Option<Reservation<'_>> {
        let mut reserved = lock_set(&self.reserved);
        let display = self.find_free_display(live, &reserved, skip)?;
        reserved.insert(display);
        drop(reserved);
        Some(Reservation {
            set: &self.reserved,
            display,
        })
    }

    /// The first display in range that is not ours (live or reserved), not in `skip`, free on
    /// the host (stale lock files of dead servers are removed on the way) and whose port can
    /// be bound on `vnc_host`.
    pub(super) fn find_free_display(
        &self,
        live: &HashMap<Uuid, Running>,
        reserved: &HashSet<u32>,
        skip: &HashSet<u32>,
    ) -> Option<u32> {
        (self.cfg.display_min..=self.cfg.display_max).find(|&display| {
            !skip.contains(&display)
                && !reserved.contains(&display)
                && !live.values().any(|running| running.display == display)
                && display_free_on_host(display)
                && port_for_display(display, self.cfg.display_min, self.cfg.port_min)
                    .is_some_and(|port| port_free(&self.cfg.vnc_host, port))
        })
    }

    pub(super) fn no_free_display(&self) -> anyhow::Error {
        anyhow!(
            "no free X display in `desktop_display_min`..=`desktop_display_max` ({}..={}): each \
             is used by a desktop, has a live /tmp/.X<N>-lock or a /tmp/.X11-unix/X<N> socket, \
             or its VNC port (from `desktop_port_min` {}) is busy on {}",
            self.cfg.display_min,
            self.cfg.display_max,
            self.cfg.port_min,
            self.cfg.vnc_host
        )
    }
}

/// A display reserved while it is launched or torn down; unreserved on drop (also when the
/// provision or release future is cancelled).
pub(super) struct Reservation<'a> {
    set: &'a std::sync::Mutex<HashSet<u32>>,
    pub(super) display: u32,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        lock_set(self.set).remove(&self.display);
    }
}

pub(super) fn lock_set(
    set: &std::sync::Mutex<HashSet<u32>>,
) -> std::sync::MutexGuard<'_, HashSet<u32>> {
    set.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// VNC port of `display`: `port_min + (display - display_min)`; `None` below the range or
/// past port 65535.
pub(super) fn port_for_display(display: u32, display_min: u32, port_min: u16) -> Option<u16> {
    let offset = display.checked_sub(display_min)?;
    u16::try_from(u32::from(port_min).checked_add(offset)?).ok()
}

/// Whether a listener can be bound on `host:port` right now (released at once).
fn port_free(host: &str, port: u16) -> bool {
    std::net::TcpListener::bind((host, port)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_to_port() {
        assert_eq!(port_for_display(100, 100, 15900), Some(15900));
        assert_eq!(port_for_display(199, 100, 15900), Some(15999));
        assert_eq!(port_for_display(99, 100, 15900), None);
        assert_eq!(
            port_for_display(100 + 65535 - 15900, 100, 15900),
            Some(65535)
        );
        assert_eq!(port_for_display(100 + 65536 - 15900, 100, 15900), None);
        assert_eq!(port_for_display(u32::MAX, 0, u16::MAX), None);
    }
}
