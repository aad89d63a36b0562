//! The virtual waiting room of an on-sale (docs/waiting-room.md).
//!
//! Each event that has one keeps its places in Redis, so every API instance
//! sees the same line and a restart loses nothing:
//! - `draw`: a sorted set of the buyers who joined before the sale opened,
//!   scored by a random number; their turns follow that order once it opens.
//! - `line`: a sorted set of later arrivals, scored by their turn (ms).
//! - `last`: the last turn given in `line`.
//! - `holders`: which sign-in session holds each buyer's place.
//! - `opened`: when a sale opened by hand before its scheduled time was
//!   first seen open (its draw starts then).
//! - `again`: how many early arrivals joined again after their window
//!   (they are in `line` too; the organizer's figures count them once).
//!
//! One script assigns and reads a place atomically, on Redis' clock. The
//! rules it follows are `boxoffice_domain::waiting_room`'s. A buyer's place
//! travels as a signed token bound to the buyer, their session and the
//! event: a booking checks it with no Redis call, and after Redis lost the
//! line, the token puts its place back.

use actix_web::http::StatusCode;
use boxoffice_domain::{Turn, WaitingRoom};
use boxoffice_platform::cache::Keys;
use boxoffice_platform::now_ms;
use boxoffice_platform::views::EventView;
use uuid::Uuid;

use crate::auth::{Signer, parse_session_field, session_field};
use crate::error::ApiError;

const TOKEN_VERSION: &str = "w1";

/// Where a buyer stands: drawn before the opening (a random number that
/// orders the draw), or a turn (ms since the Unix epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spot {
    Drawn(u64),
    Turn(i64),
}

/// A buyer's place in an event's waiting room, as its token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    pub event: Uuid,
    pub holder: Uuid,
    /// The sign-in session that holds the place (none for a guest buyer).
    pub session: Option<Uuid>,
    pub spot: Spot,
}

impl Place {
    pub fn token(&self, signer: &Signer) -> String {
        let session = session_field(self.session);
        let spot = match self.spot {
            Spot::Drawn(n) => format!("d.{n}"),
            Spot::Turn(ms) => format!("t.{ms}"),
        };
        signer.sign(&format!(
            "{TOKEN_VERSION}.{}.{}.{session}.{spot}",
            self.event, self.holder
        ))
    }

    /// The place `token` names, refused (`403 invalid_waiting_room_token`)
    /// unless this deployment signed it for this event, buyer and sign-in.
    pub fn read_bound(
        signer: &Signer,
        token: &str,
        event: Uuid,
        holder: Uuid,
        session: Option<Uuid>,
    ) -> Result<Self, ApiError> {
        Self::read(signer, token)
            .filter(|p| p.event == event && p.holder == holder && p.session == session)
            .ok_or_else(|| {
                forbidden(
                    "invalid_waiting_room_token",
                    "this waiting-room token is not this buyer's, this sign-in's or this event's",
                )
            })
    }

    /// The place a token names, if this deployment signed it.
    pub fn read(signer: &Signer, token: &str) -> Option<Self> {
        let payload = signer.open(token.trim())?;
        let mut parts = payload.split('.');
        let (
            Some(TOKEN_VERSION),
            Some(event),
            Some(holder),
            Some(session),
            Some(kind),
            Some(v),
            None,
        ) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        )
        else {
            return None;
        };
        Some(Self {
            event: event.parse().ok()?,
            holder: holder.parse().ok()?,
            session: parse_session_field(session)?,
            spot: match kind {
                "d" => Spot::Drawn(v.parse().ok()?),
                "t" => Spot::Turn(v.parse().ok()?),
                _ => return None,
            },
        })
    }
}

/// A buyer's standing, as the script answered it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    pub place: Place,
    /// The buyer's turn, once known (a drawn place has none before the
    /// sale opens).
    pub turn_at_ms: Option<i64>,
    /// Buyers ahead whose turn has not come (none before the draw).
    pub ahead: Option<u64>,
    /// Buyers whose turn has not come, this one included.
    pub waiting: u64,
    /// Buyers who joined before the opening.
    pub drawn: u64,
    pub now_ms: i64,
}

/// An event's waiting room as its organizer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Figures {
    pub waiting: u64,
    pub admitted: u64,
    pub drawn: u64,
}

/// Assigns, reads and restores places (docs/waiting-room.md).
///
/// KEYS: draw, line, last, holders, opened, again. ARGV: holder, session,
/// scheduled opening, queue opening, sale close, interval, random score,
/// the sale's state set by hand (`open`, `closed`, `scheduled`), the
/// signed-out session whose place may be taken over (or empty), mode
/// (`join`, `status`), restore kind (`d`, `t` or empty), restore value,
/// key lifetime (ms), shopping window (ms).
///
/// Answers `{state, kind, value, turn, ahead, waiting, drawn, now}`; state
/// is `ok`, `none` (no place, in status mode), `elsewhere` (value: the
/// session holding it), `not_open` (value: when joining opens) or `closed`.
/// The rules are `boxoffice_domain::waiting_room`'s;
/// `backend/tests/waiting_room_script.rs` checks the answers against a
/// model built on them.
const PLACE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local holder, session = ARGV[1], ARGV[2]
local scheduled, queue_opens, closes = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local interval, sale, take_over = tonumber(ARGV[6]), ARGV[8], ARGV[9]
local mode, window, ttl = ARGV[10], tonumber(ARGV[14]), tonumber(ARGV[13])
-- A sale opened by hand before its scheduled time draws from the first
-- call that sees it open, on Redis' clock.
if sale == 'open' and now < scheduled then redis.call('SET', KEYS[5], now, 'NX', 'PX', ttl) end
local opens = scheduled
local opened = redis.call('GET', KEYS[5])
if opened and tonumber(opened) < opens then opens = tonumber(opened) end
local drawn = redis.call('ZCARD', KEYS[1])
local started = now >= opens or redis.call('EXISTS', KEYS[3]) == 1 or redis.call('ZCARD', KEYS[2]) > 0

local function find()
  local s = redis.call('ZSCORE', KEYS[2], holder)
  if s then return 't', tonumber(s) end
  s = redis.call('ZSCORE', KEYS[1], holder)
  if s then return 'd', tonumber(s) end
  return nil, nil
end
local function turn_of(kind, value)
  if kind == 't' then return value end
  if now < opens then return nil end
  return opens + redis.call('ZRANK', KEYS[1], holder) * interval
end
-- The next turn in the line: one interval after the latest turn known
-- (the last given, the line's latest, the draw's last), never before now.
local function queue()
  local previous = opens + (drawn - 1) * interval
  local last = redis.call('GET', KEYS[3])
  if last then previous = math.max(previous, tonumber(last)) end
  local top = redis.call('ZREVRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  if top[2] then previous = math.max(previous, tonumber(top[2])) end
  local turn = math.max(now, previous + interval)
  redis.call('SET', KEYS[3], turn, 'PX', ttl)
  redis.call('ZADD', KEYS[2], turn, holder)
  return turn
end
local function keep()
  for i = 1, 6 do redis.call('PEXPIRE', KEYS[i], ttl) end
end

local h = redis.call('HGET', KEYS[4], holder)
if h and h ~= session and not (take_over ~= '' and h == take_over) then
  return {'elsewhere', '', h, -1, -1, 0, drawn, now}
end

local kind, value = find()
if not kind and ARGV[11] ~= '' then
  -- The token proves a place that Redis no longer has (a flush, a lost
  -- primary): put it back where it was. A turn keeps its instant; an
  -- early arrival's number rejoins the draw before the opening and, once
  -- the draw has been made without it, queues at the back of the line.
  value = tonumber(ARGV[12])
  if ARGV[11] == 't' then
    redis.call('ZADD', KEYS[2], value, holder)
    local last = redis.call('GET', KEYS[3])
    if not last or tonumber(last) < value then redis.call('SET', KEYS[3], value, 'PX', ttl) end
    kind = 't'
  elseif started then
    value = queue()
    kind = 't'
  else
    redis.call('ZADD', KEYS[1], value, holder)
    drawn = drawn + 1
    kind = 'd'
  end
  keep()
end
local again = false
if kind and mode == 'join' then
  local turn = turn_of(kind, value)
  if turn and now >= turn + window then
    -- The shopping window has ended: joining again goes to the back. A
    -- drawn place stays in the draw, so nobody's turn there moves; `again`
    -- counts such buyers, now in the line too.
    redis.call('ZREM', KEYS[2], holder)
    again = kind == 'd'
    kind = nil
  end
end
if not kind then
  if mode ~= 'join' then return {'none', '', '', -1, -1, 0, drawn, now} end
  if sale == 'closed' then return {'closed', '', '', -1, -1, 0, drawn, now} end
  if sale ~= 'open' then
    if now < math.min(queue_opens, opens) then return {'not_open', '', string.format('%.0f', queue_opens), -1, -1, 0, drawn, now} end
    if now >= closes then return {'closed', '', '', -1, -1, 0, drawn, now} end
  end
  if not started then
    value = tonumber(ARGV[7])
    redis.call('ZADD', KEYS[1], value, holder)
    drawn = drawn + 1
    kind = 'd'
  else
    value = queue()
    kind = 't'
    if again then redis.call('INCR', KEYS[6]) end
  end
end
if h ~= session then redis.call('HSET', KEYS[4], holder, session) end
keep()

local turn = turn_of(kind, value)
local drawn_in = 0
if now >= opens then drawn_in = math.min(drawn, math.floor((now - opens) / interval) + 1) end
local waiting = (drawn - drawn_in) + redis.call('ZCOUNT', KEYS[2], '(' .. now, '+inf')
local ahead = -1
if turn then
  if turn <= now then ahead = 0
  elseif kind == 'd' then ahead = math.max(0, redis.call('ZRANK', KEYS[1], holder) - drawn_in)
  else ahead = (drawn - drawn_in) + redis.call('ZCOUNT', KEYS[2], '(' .. now, '(' .. turn) end
end
return {'ok', kind, string.format('%.0f', value), turn or -1, ahead, waiting, drawn, now}
";

/// The organizer's figures: KEYS draw, line, opened, again; ARGV scheduled
/// opening, interval. Answers `{waiting, admitted, drawn, now}`, each buyer
/// counted once where they stand now: an early arrival who joined again
/// after their window (`again` counts them) is counted in the line, not
/// also in the draw. Constant work but for two ZCOUNTs (logarithmic).
const FIGURES: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local opens, interval = tonumber(ARGV[1]), tonumber(ARGV[2])
local opened = redis.call('GET', KEYS[3])
if opened and tonumber(opened) < opens then opens = tonumber(opened) end
local drawn = redis.call('ZCARD', KEYS[1])
local drawn_in = 0
if now >= opens then drawn_in = math.min(drawn, math.floor((now - opens) / interval) + 1) end
local again = tonumber(redis.call('GET', KEYS[4]) or '0')
local line_in = redis.call('ZCOUNT', KEYS[2], '-inf', now)
local line_waiting = redis.call('ZCOUNT', KEYS[2], '(' .. now, '+inf')
return {(drawn - drawn_in) + line_waiting, math.max(0, drawn_in - again) + line_in, drawn, now}
";

/// What joining or asking can end in, besides a standing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Another session of this account holds the place.
    Elsewhere(Uuid),
    /// Joining opens at this instant (ms).
    NotOpen(i64),
    /// The sale has closed.
    Closed,
    /// No place (asking without joining).
    NoPlace,
}

/// The waiting rooms' scripts.
pub struct WaitingRooms {
    place: redis::Script,
    figures: redis::Script,
}

impl Default for WaitingRooms {
    fn default() -> Self {
        Self {
            place: redis::Script::new(PLACE),
            figures: redis::Script::new(FIGURES),
        }
    }
}

/// Whether to take a place (or read one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Join,
    Status,
}

/// What one call asks about one buyer.
pub struct Ask<'a> {
    pub event: &'a EventView,
    pub room: WaitingRoom,
    pub holder: Uuid,
    pub session: Option<Uuid>,
    pub mode: Mode,
    /// The signed-out session whose place this one may take over: only
    /// while that session still holds it.
    pub take_over_from: Option<Uuid>,
    /// A place the buyer's token proves, put back if Redis lost it.
    pub restore: Option<Spot>,
}

/// One run of the place script, in its own terms (instants in ms).
#[derive(Debug, Clone)]
pub struct Call {
    pub holder: Uuid,
    pub session: Option<Uuid>,
    pub scheduled_ms: i64,
    pub queue_opens_ms: i64,
    pub closes_ms: i64,
    pub interval_ms: i64,
    /// The score of a new early arrival: 53 random bits, which a sorted
    /// set's score keeps exactly.
    pub random: u64,
    /// The sale's state as set by hand: `scheduled`, `open` or `closed`.
    pub sale: String,
    pub take_over_from: Option<Uuid>,
    pub mode: Mode,
    pub restore: Option<Spot>,
    pub ttl_ms: i64,
    pub window_ms: i64,
}

/// What the place script answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The place as stored: a draw number, or a turn.
    pub outcome: Result<Spot, Refusal>,
    pub turn_ms: Option<i64>,
    pub ahead: Option<u64>,
    pub waiting: u64,
    pub drawn: u64,
    /// Redis' clock when it answered.
    pub now_ms: i64,
}

/// An event's six waiting-room keys, in the scripts' order.
pub fn keys(keys: &Keys, event: Uuid) -> [String; 6] {
    ["draw", "line", "last", "holders", "opened", "again"].map(|k| keys.waiting_room(event, k))
}

fn unavailable(e: impl std::fmt::Display) -> ApiError {
    ApiError::unavailable("the waiting room is unavailable", e)
}

impl WaitingRooms {
    /// Runs the place script once.
    pub async fn call(
        &self,
        conn: &mut impl redis::aio::ConnectionLike,
        keys: &[String; 6],
        call: &Call,
    ) -> redis::RedisResult<Reply> {
        let (restore_kind, restore_value) = match call.restore {
            None => ("", String::new()),
            Some(Spot::Drawn(n)) => ("d", n.to_string()),
            Some(Spot::Turn(ms)) => ("t", ms.to_string()),
        };
        let mut invocation = self.place.prepare_invoke();
        for k in keys {
            invocation.key(k);
        }
        invocation
            .arg(call.holder.to_string())
            .arg(session_field(call.session))
            .arg(call.scheduled_ms)
            .arg(call.queue_opens_ms)
            .arg(call.closes_ms)
            .arg(call.interval_ms)
            .arg(call.random.to_string())
            .arg(&call.sale)
            .arg(
                call.take_over_from
                    .map(|s| session_field(Some(s)))
                    .unwrap_or_default(),
            )
            .arg(match call.mode {
                Mode::Join => "join",
                Mode::Status => "status",
            })
            .arg(restore_kind)
            .arg(restore_value)
            .arg(call.ttl_ms)
            .arg(call.window_ms);
        let (state, kind, value, turn, ahead, waiting, drawn, now): (
            String,
            String,
            String,
            i64,
            i64,
            u64,
            u64,
            i64,
        ) = invocation.invoke_async(conn).await?;
        let bad = |e: &dyn std::fmt::Display| {
            redis::RedisError::from((
                redis::ErrorKind::Parse,
                "unexpected waiting-room answer",
                e.to_string(),
            ))
        };
        let outcome = match state.as_str() {
            "ok" => Ok(match kind.as_str() {
                "d" => Spot::Drawn(value.parse().map_err(|e| bad(&e))?),
                _ => Spot::Turn(value.parse().map_err(|e| bad(&e))?),
            }),
            "elsewhere" => Err(Refusal::Elsewhere(value.parse().unwrap_or_default())),
            "not_open" => Err(Refusal::NotOpen(value.parse().map_err(|e| bad(&e))?)),
            "closed" => Err(Refusal::Closed),
            _ => Err(Refusal::NoPlace),
        };
        Ok(Reply {
            outcome,
            turn_ms: (turn >= 0).then_some(turn),
            ahead: u64::try_from(ahead).ok(),
            waiting,
            drawn,
            now_ms: now,
        })
    }

    /// Joins or reads a buyer's place.
    pub async fn place(
        &self,
        redis: &boxoffice_platform::cache::Shared,
        keys_of: &Keys,
        ask: Ask<'_>,
    ) -> Result<Result<Standing, Refusal>, ApiError> {
        let spec = &ask.event.spec;
        let opens = spec.sale_opens_at_ms;
        let call = Call {
            holder: ask.holder,
            session: ask.session,
            scheduled_ms: opens,
            queue_opens_ms: ask.room.queue_opens_at_ms(opens),
            closes_ms: spec.sale_closes_at_ms,
            interval_ms: ask.room.interval_ms(),
            random: rand::random::<u64>() >> 11,
            sale: ask.event.sale_state.clone(),
            take_over_from: ask.take_over_from,
            mode: ask.mode,
            restore: ask.restore,
            // A place is kept a day past the sale's close.
            ttl_ms: (spec.sale_closes_at_ms - now_ms()).max(0) + 86_400_000,
            window_ms: ask.room.window_ms(),
        };
        let mut conn = redis.conn();
        let reply = self
            .call(&mut conn, &keys(keys_of, ask.event.id.0), &call)
            .await
            .map_err(unavailable)?;
        let spot = match reply.outcome {
            Ok(spot) => spot,
            Err(r) => return Ok(Err(r)),
        };
        Ok(Ok(Standing {
            place: Place {
                event: ask.event.id.0,
                holder: ask.holder,
                session: ask.session,
                // Once the turn is known, the token carries it: a booking
                // is then checked without Redis.
                spot: match reply.turn_ms {
                    Some(t) => Spot::Turn(t),
                    None => spot,
                },
            },
            turn_at_ms: reply.turn_ms,
            ahead: reply.ahead,
            waiting: reply.waiting,
            drawn: reply.drawn,
            now_ms: reply.now_ms,
        }))
    }

    /// How many wait and how many were let in.
    pub async fn figures(
        &self,
        redis: &boxoffice_platform::cache::Shared,
        keys_of: &Keys,
        event: &EventView,
        room: WaitingRoom,
    ) -> Result<Figures, ApiError> {
        let mut conn = redis.conn();
        self.figures_of(
            &mut conn,
            &keys(keys_of, event.id.0),
            event.spec.sale_opens_at_ms,
            room.interval_ms(),
        )
        .await
        .map(|(figures, _)| figures)
        .map_err(unavailable)
    }

    /// The figures script, in its own terms, with Redis' clock (ms).
    pub async fn figures_of(
        &self,
        conn: &mut impl redis::aio::ConnectionLike,
        keys: &[String; 6],
        scheduled_ms: i64,
        interval_ms: i64,
    ) -> redis::RedisResult<(Figures, i64)> {
        let [draw, line, _, _, opened, again] = keys;
        let mut invocation = self.figures.prepare_invoke();
        invocation
            .key(draw)
            .key(line)
            .key(opened)
            .key(again)
            .arg(scheduled_ms)
            .arg(interval_ms);
        let (waiting, admitted, drawn, now): (u64, u64, u64, i64) =
            invocation.invoke_async(conn).await?;
        Ok((
            Figures {
                waiting,
                admitted,
                drawn,
            },
            now,
        ))
    }
}

fn forbidden(code: &str, message: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, code, message)
}

fn not_yet(message: String, retry_after_s: u64) -> ApiError {
    ApiError::Later {
        status: StatusCode::FORBIDDEN,
        code: "not_admitted_yet",
        message,
        retry_after_s,
    }
}

/// Whether a new booking request may go ahead: for an event with a
/// waiting room, only with a token of this buyer's, this session's and
/// this event's place, from its turn until its shopping window ends. No
/// Redis call: the token is signed and carries the turn.
pub fn check_admitted(
    signer: &Signer,
    event: &EventView,
    holder: Uuid,
    session: Option<Uuid>,
    token: Option<&str>,
) -> Result<(), ApiError> {
    let Some(room) = event.spec.waiting_room else {
        return Ok(());
    };
    let path = format!("/api/events/{}/waiting-room", event.id);
    let Some(token) = token else {
        return Err(forbidden(
            "waiting_room_required",
            &format!(
                "this sale has a waiting room: join it (POST {path}) and send its token as Waiting-Room-Token"
            ),
        ));
    };
    let place = Place::read_bound(signer, token, event.id.0, holder, session)?;
    let Spot::Turn(turn) = place.spot else {
        return Err(not_yet(
            format!("your turn is drawn when the sale opens; ask GET {path}"),
            5,
        ));
    };
    match Turn::at(turn, room.window_ms(), now_ms()) {
        Turn::Admitted { .. } => Ok(()),
        Turn::Waiting { wait_ms } => {
            let retry_after_s = (wait_ms as u64).div_ceil(1000).max(1);
            Err(not_yet(
                format!("your turn comes in {retry_after_s} s"),
                retry_after_s,
            ))
        }
        Turn::Expired => Err(forbidden(
            "admission_expired",
            &format!("your shopping window has ended: join the waiting room again (POST {path})"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn place(spot: Spot, session: Option<Uuid>) -> Place {
        Place {
            event: Uuid::from_u128(1),
            holder: Uuid::from_u128(2),
            session,
            spot,
        }
    }

    #[test]
    fn tokens_round_trip_and_forgeries_do_not() {
        let s = Signer::new("k1");
        for p in [
            place(Spot::Drawn(9_007_199_254_740_991), None),
            place(Spot::Turn(1_900_000_000_123), Some(Uuid::from_u128(3))),
        ] {
            let t = p.token(&s);
            assert_eq!(Place::read(&s, &t), Some(p));
            assert_eq!(Place::read(&Signer::new("k2"), &t), None);
            // A buyer token signed by the same secret is no place.
            assert!(!t.starts_with("v2."));
        }
        let t = place(Spot::Turn(5_000), None).token(&s);
        assert_eq!(Place::read(&s, &t.replacen("t.5000", "t.1000", 1)), None);
        let buyer = s.issue(&crate::auth::Claims {
            role: crate::auth::Role::Buyer,
            id: Uuid::from_u128(2),
            session: None,
            expires_at_s: 1,
        });
        assert_eq!(Place::read(&s, &buyer), None);
    }

    proptest! {
        /// Any one character changed makes the token refused or read as the
        /// same place (hex digits decode in either case): never another.
        #[test]
        fn any_change_to_a_place_token_is_refused(pos in 0usize..300, c in proptest::char::range('!', '~'), turn in any::<bool>()) {
            let s = Signer::new("k1");
            let original = place(if turn { Spot::Turn(1_900_000_000_000) } else { Spot::Drawn(77) }, Some(Uuid::from_u128(3)));
            let t = original.token(&s);
            let pos = pos % t.len();
            let mut changed: Vec<char> = t.chars().collect();
            prop_assume!(changed[pos] != c);
            changed[pos] = c;
            let changed: String = changed.into_iter().collect();
            if let Some(got) = Place::read(&s, &changed) {
                prop_assert_eq!(got, original);
            }
        }
    }
}
