//! Direct reads: while the pool is lightly loaded (nothing queued, at most one job per worker),
//! the JS thread watches the worker channels itself (libuv polls on duplicates of their
//! descriptors) and the engine's I/O thread stops watching them. A reply then wakes only the
//! JS thread, which reads it and hands the records to JS in the same callback, as Node's own
//! IPC does. Otherwise a reply travels worker → I/O thread → JS thread: two wake-ups in a row,
//! much of a lone job's round trip on an idle machine. Once the load grows (see
//! `comrade_core::engine::direct_wanted`), the I/O thread reads again, so that a worker gets
//! its next job whatever the JS thread is doing.

use std::collections::{HashMap, HashSet};
use std::ffi::{c_int, c_void};
use std::os::fd::{AsRawFd, OwnedFd};
use std::ptr;
use std::time::{Duration, Instant};

use comrade_core::engine::Engine;
use comrade_core::scheduler::WorkerId;
use napi::sys;

const UV_POLL: c_int = 8;
const UV_READABLE: c_int = 1;
/// Room for a `uv_poll_t`; checked against libuv's own size at start.
const POLL_WORDS: usize = 64;
/// After the I/O thread took the reading back, how long before the JS thread may take it again:
/// a load that keeps crossing the line would otherwise re-register every channel each time.
const REENTER_AFTER: Duration = Duration::from_millis(100);

extern "C" {
    fn uv_handle_size(kind: c_int) -> usize;
    fn uv_poll_init(lp: *mut sys::uv_loop_s, handle: *mut c_void, fd: c_int) -> c_int;
    fn uv_poll_start(
        handle: *mut c_void,
        events: c_int,
        cb: unsafe extern "C" fn(*mut c_void, c_int, c_int),
    ) -> c_int;
    fn uv_poll_stop(handle: *mut c_void) -> c_int;
    fn uv_close(handle: *mut c_void, cb: unsafe extern "C" fn(*mut c_void));
    fn uv_unref(handle: *mut c_void);
}

/// One watched channel. `handle` comes first, so a pointer to the handle is a pointer to this.
#[repr(C)]
struct Poll {
    handle: [u64; POLL_WORDS],
    engine: Engine,
    worker: WorkerId,
    /// The duplicate descriptor the poll watches; closed with the poll.
    fd: OwnedFd,
    env: sys::napi_env,
    callback: sys::napi_ref,
    async_context: sys::napi_async_context,
    active: bool,
    /// The channel reached its end: never watched again.
    closed: bool,
}

pub struct Direct {
    env: sys::napi_env,
    uv_loop: *mut sys::uv_loop_s,
    callback: sys::napi_ref,
    async_context: sys::napi_async_context,
    polls: HashMap<WorkerId, *mut Poll>,
    generation: u64,
    active: bool,
    /// A channel could not be watched: the I/O thread reads everything from then on.
    failed: bool,
    /// When direct reads last stopped.
    stopped_at: Option<Instant>,
}

impl Direct {
    /// `callback` is the JS function that takes the records (the pool's drain). None when
    /// libuv cannot be reached as expected; the pool then works through its I/O thread only.
    pub fn new(env: sys::napi_env, callback: sys::napi_value) -> Option<Direct> {
        // SAFETY: plain N-API calls on the JS thread with a live env and value.
        unsafe {
            if uv_handle_size(UV_POLL) > POLL_WORDS * 8 {
                return None;
            }
            let mut uv_loop = ptr::null_mut();
            if sys::napi_get_uv_event_loop(env, &mut uv_loop) != sys::Status::napi_ok
                || uv_loop.is_null()
            {
                return None;
            }
            let mut reference = ptr::null_mut();
            if sys::napi_create_reference(env, callback, 1, &mut reference) != sys::Status::napi_ok
            {
                return None;
            }
            let mut name = ptr::null_mut();
            let label = "comrade.direct";
            sys::napi_create_string_utf8(
                env,
                label.as_ptr().cast(),
                label.len() as isize,
                &mut name,
            );
            let mut async_context = ptr::null_mut();
            if sys::napi_async_init(env, ptr::null_mut(), name, &mut async_context)
                != sys::Status::napi_ok
            {
                sys::napi_delete_reference(env, reference);
                return None;
            }
            Some(Direct {
                env,
                uv_loop,
                callback: reference,
                async_context,
                polls: HashMap::new(),
                generation: u64::MAX,
                active: false,
                failed: false,
                stopped_at: None,
            })
        }
    }

    /// Brings the polls in line with the engine: one per open channel, running while the
    /// engine wants direct reads. Called on the JS thread whenever JS talks to the engine.
    pub fn sync(&mut self, engine: &Engine) {
        let generation = engine.channels_generation();
        if generation != self.generation {
            self.generation = generation;
            let known: HashSet<WorkerId> = self.polls.keys().copied().collect();
            let (live, fresh) = engine.channels(&known);
            let live: HashSet<WorkerId> = live.into_iter().collect();
            let gone: Vec<WorkerId> = known.difference(&live).copied().collect();
            for w in gone {
                if let Some(p) = self.polls.remove(&w) {
                    close(p);
                }
            }
            for (w, fd) in fresh {
                match self.open(engine, w, fd) {
                    Some(p) => {
                        self.polls.insert(w, p);
                    }
                    // A channel nobody watches would never be read in direct mode.
                    None => self.failed = true,
                }
            }
        }
        let want = !self.failed
            && engine.direct_wanted(self.active)
            && (self.active || self.stopped_at.is_none_or(|t| t.elapsed() >= REENTER_AFTER));
        if want != self.active {
            self.active = want;
            // Both orders are safe: a registration reports data that is already waiting, and
            // a libuv poll fires for as long as some is.
            if want {
                for &p in self.polls.values() {
                    set_active(p, true);
                }
                engine.set_direct(true);
            } else {
                engine.set_direct(false);
                for &p in self.polls.values() {
                    set_active(p, false);
                }
                self.stopped_at = Some(Instant::now());
            }
        }
    }

    fn open(&self, engine: &Engine, worker: WorkerId, fd: OwnedFd) -> Option<*mut Poll> {
        let raw = fd.as_raw_fd();
        let p = Box::into_raw(Box::new(Poll {
            handle: [0; POLL_WORDS],
            engine: engine.clone(),
            worker,
            fd,
            env: self.env,
            callback: self.callback,
            async_context: self.async_context,
            active: false,
            closed: false,
        }));
        // SAFETY: `p` is a fresh allocation that outlives the handle (freed in its close
        // callback); the loop is the env's own, and this is its thread.
        unsafe {
            if uv_poll_init(self.uv_loop, p.cast(), raw) != 0 {
                drop(Box::from_raw(p));
                return None;
            }
            // The polls never keep Node alive; pending jobs do that (through the wake).
            uv_unref(p.cast());
        }
        if self.active {
            set_active(p, true);
        }
        Some(p)
    }
}

impl Drop for Direct {
    fn drop(&mut self) {
        for (_, p) in self.polls.drain() {
            close(p);
        }
        // SAFETY: the env outlives the pool object being finalized; the polls that used these
        // are stopped, so no callback can use them any more.
        unsafe {
            sys::napi_async_destroy(self.env, self.async_context);
            sys::napi_delete_reference(self.env, self.callback);
        }
    }
}

fn set_active(p: *mut Poll, on: bool) {
    // SAFETY: `p` is a live poll owned by `Direct`, used on the JS thread only.
    unsafe {
        if (*p).active == on || (on && (*p).closed) {
            return;
        }
        (*p).active = on;
        if on {
            uv_poll_start(p.cast(), UV_READABLE, on_readable);
        } else {
            uv_poll_stop(p.cast());
        }
    }
}

/// Stops a poll whose channel is finished; it is never started again.
fn stop_for_good(p: *mut Poll) {
    // SAFETY: `p` is a live poll owned by `Direct`, used on the JS thread only.
    unsafe {
        uv_poll_stop(p.cast());
        (*p).active = false;
        (*p).closed = true;
    }
}

fn close(p: *mut Poll) {
    // SAFETY: `p` is live; after uv_close libuv calls `on_closed` once, which frees it.
    unsafe {
        uv_poll_stop(p.cast());
        (*p).active = false;
        uv_close(p.cast(), on_closed);
    }
}

unsafe extern "C" fn on_closed(handle: *mut c_void) {
    // SAFETY: the handle is the first field of a Poll made by Box::into_raw in `open`; this
    // is its last use. Dropping it closes the duplicate descriptor.
    drop(unsafe { Box::from_raw(handle.cast::<Poll>()) });
}

unsafe extern "C" fn on_readable(handle: *mut c_void, status: c_int, _events: c_int) {
    // SAFETY: libuv passes back the handle of a live Poll (first field), on the JS thread.
    let p = handle.cast::<Poll>();
    unsafe {
        if status < 0 {
            stop_for_good(p);
            return;
        }
        let (records, open) = (*p).engine.read_direct((*p).worker);
        if !open {
            // The end of the stream stays readable: stop, or this would fire until the
            // worker is reaped.
            stop_for_good(p);
        }
        if records {
            call_js((*p).env, (*p).callback, (*p).async_context);
        }
    }
}

/// Calls the pool's drain as Node calls any I/O callback: in its own scope, with microtasks and
/// `process.nextTick` callbacks run after it, and an exception reported as uncaught.
unsafe fn call_js(env: sys::napi_env, callback: sys::napi_ref, ctx: sys::napi_async_context) {
    // SAFETY: on the JS thread, inside a libuv callback, with the pool's live env.
    unsafe {
        let mut scope = ptr::null_mut();
        if sys::napi_open_handle_scope(env, &mut scope) != sys::Status::napi_ok {
            return;
        }
        let mut func = ptr::null_mut();
        let mut recv = ptr::null_mut();
        if sys::napi_get_reference_value(env, callback, &mut func) == sys::Status::napi_ok
            && !func.is_null()
            && sys::napi_get_global(env, &mut recv) == sys::Status::napi_ok
        {
            let mut result = ptr::null_mut();
            let status = sys::napi_make_callback(env, ctx, recv, func, 0, ptr::null(), &mut result);
            if status == sys::Status::napi_pending_exception {
                let mut err = ptr::null_mut();
                if sys::napi_get_and_clear_last_exception(env, &mut err) == sys::Status::napi_ok {
                    sys::napi_fatal_exception(env, err);
                }
            }
        }
        sys::napi_close_handle_scope(env, scope);
    }
}
