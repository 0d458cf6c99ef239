//! The robot lots service: at a service area with charging robots, drivers take a place in a
//! bay (like taking a queue number), robots report where they are and hear their task, staff
//! set the lot up, override and release. The state machine lives in
//! `chargeops_dispatch::live`; this service keeps the lots, checks what the machine cannot
//! (stations and chargers exist, robots belong to the station), stores lots, tells the event
//! bus, lets the gateway accept a car's tag at its robot, and runs the duty that feeds the lots
//! the robots' charging sessions and the clock ([`runner`]).
//!
//! Storage: one document a lot (kind [`DOC_KIND`], id the station), the whole [`LiveLot`]. A
//! change to a car is stored before the answer leaves, so a crash loses no car a driver was
//! told about; a report that only moves a robot is stored with the next tick (robots report
//! again anyway). Every change is tried on a copy and swapped in only once stored: a refused
//! request or a storage failure changes nothing.

mod runner;
mod view;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use serde::Deserialize;
use utoipa::ToSchema;

use chargeops_core::Event;
use chargeops_core::secret::random_hex;
use chargeops_dispatch::live::{self, Change, LiveError, LiveLot, NewCar, Report, Reported, Task};
use chargeops_dispatch::{Fleet, Lot, Point};
use chargeops_gateway::valid_charger_id;

use crate::{Caller, Duties, Error, Platform, Result};
pub use view::{CarView, LotStats, LotView, RobotAnswer, RobotView, TaskView};
use view::{car_view, lot_view, task_view};

/// Store document kind of a lot; the document id is the station.
pub const DOC_KIND: &str = "lot";

/// The lots duty's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct LotsConfig {
    /// Seconds of platform time after which a robot that has not reported is offline.
    pub timeout_secs: u64,
    /// Wall-clock milliseconds between ticks; capped at 2 s, the dispatcher's promise.
    pub tick_ms: u64,
}

impl Default for LotsConfig {
    fn default() -> Self {
        LotsConfig {
            timeout_secs: live::DEFAULT_TIMEOUT_S as u64,
            tick_ms: 1000,
        }
    }
}

/// `bays` of a lot set-up: a number (a typical service-area layout of that many bays) or a
/// list of points.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Bays {
    Count(usize),
    Points(Vec<Point>),
}

/// A lot's layout, fleet and robots (each a registered charger of the station).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LotSetup {
    pub bays: Bays,
    pub dock: Option<Point>,
    #[serde(default)]
    pub fleet: Fleet,
    pub robots: Vec<String>,
}

/// A car taking a place in a bay.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CarRequest {
    pub bay: usize,
    pub energy_kwh: f64,
    /// The car's own charging limit; the robots' power when not given.
    pub max_power_kw: Option<f64>,
    pub plate: Option<String>,
    pub patience_s: Option<f64>,
}

/// What a robot reports: where it is, its battery, its own state and the car it serves.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RobotReport {
    pub x: f64,
    pub y: f64,
    pub battery_kwh: f64,
    pub state: String,
    pub car: Option<String>,
}

/// Every robot lot of the network.
pub struct Lots {
    platform: Platform,
    /// Serialises every change of every lot, between the callers and the lots duty.
    book: tokio::sync::Mutex<Book>,
    /// Seconds of platform time after which a silent robot is offline (f64 bits).
    timeout_s: AtomicU64,
    /// The charger ids of every lot's robots, once the lots are loaded: lets the lots duty
    /// pass over the sessions of the network's other chargers without taking the lock.
    robot_ids: RwLock<Option<HashSet<String>>>,
    /// Each robot's car, for the gateway to accept the car's id tag at that robot only.
    cars: Arc<RobotCars>,
}

/// Robot charger id to the car it is sent to.
#[derive(Default)]
struct RobotCars(RwLock<HashMap<String, String>>);

impl chargeops_gateway::TagAuthority for RobotCars {
    /// A robot starts its transaction with the first [`live::ID_TAG_CHARS`] characters of its
    /// car's id (the id itself is the driver's unguessable capability): accepted at that robot
    /// while it is sent to that car, nowhere else.
    fn accepts(&self, charger_id: &str, id_tag: &str) -> bool {
        let cars = self.0.read().unwrap_or_else(|e| e.into_inner());
        cars.get(charger_id).is_some_and(|car| {
            !id_tag.is_empty()
                && car.starts_with(id_tag)
                && id_tag.len() >= car.len().min(live::ID_TAG_CHARS)
        })
    }
}

/// The lots in memory, behind [`Lots::book`].
#[derive(Default)]
struct Book {
    loaded: bool,
    by_station: HashMap<String, LiveLot>,
    /// Lots with robot reports not stored yet.
    dirty: HashSet<String>,
}

impl Book {
    fn lot(&self, station: &str) -> Result<&LiveLot> {
        self.by_station
            .get(station)
            .ok_or_else(|| Error::not_found(format!("station {station} has no robot lot")))
    }

    /// The lot holding car `id`; not found for an id that was never handed out.
    fn station_of_car(&self, id: &str) -> Result<String> {
        valid_car_id(id)
            .then(|| {
                self.by_station
                    .iter()
                    .find(|(_, l)| l.car(id).is_some())
                    .map(|(s, _)| s.clone())
            })
            .flatten()
            .ok_or_else(|| Error::not_found("car not found"))
    }

    /// Car `id` of the lot of `station` as its driver sees it.
    fn car_json(&self, station: &str, id: &str, now: f64) -> Result<CarView> {
        let l = self.lot(station)?;
        let c = l.car(id).ok_or_else(|| Error::not_found("car not found"))?;
        Ok(car_view(station, l, c, now))
    }
}

/// A car id as handed out: hex, so anything else is unknown without a lookup.
fn valid_car_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

fn live_error(e: LiveError) -> Error {
    match e {
        LiveError::Invalid(m) => Error::invalid(m),
        LiveError::NotFound(m) => Error::not_found(m),
        LiveError::Conflict(m) => Error::conflict("conflict", m),
    }
}

/// Runs the timeouts and the dispatcher on `lot` at `now`; what changed.
fn settle(lot: &mut LiveLot, now: f64, timeout_s: f64) -> Option<Change> {
    let t = lot.timeouts(now, timeout_s);
    Change::merge(t, lot.dispatch(now))
}

impl Lots {
    pub fn new(platform: Platform) -> Arc<Self> {
        Arc::new(Lots {
            platform,
            book: tokio::sync::Mutex::new(Book::default()),
            timeout_s: AtomicU64::new(live::DEFAULT_TIMEOUT_S.to_bits()),
            robot_ids: RwLock::new(None),
            cars: Arc::default(),
        })
    }

    /// Starts the lots duty with `config`: session events and the clock for every lot, and
    /// lets the gateway accept a car's tag at its robot. Without it the lots still answer, but
    /// robots never time out and sessions do not reach the lots.
    pub fn start(self: &Arc<Self>, duties: &Duties, config: LotsConfig) {
        self.timeout_s.store(
            (config.timeout_secs.max(1) as f64).to_bits(),
            Ordering::Relaxed,
        );
        self.platform.gateway.set_tag_authority(self.cars.clone());
        let lots = self.clone();
        duties.start("lots", move |_stop| {
            runner::run(lots.clone(), config.clone())
        });
    }

    /// Seconds of platform time after which a silent robot is offline.
    pub fn timeout_s(&self) -> f64 {
        f64::from_bits(self.timeout_s.load(Ordering::Relaxed))
    }

    /// The platform clock in seconds, the unit of the lot state machine.
    fn now_s(&self) -> f64 {
        self.platform.now().timestamp_micros() as f64 / 1e6
    }

    /// Whether `charger` may be a robot: `true` while the lots are not loaded yet.
    fn may_be_robot(&self, charger: &str) -> bool {
        self.robot_ids
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_none_or(|ids| ids.contains(charger))
    }

    /// Re-reads the robot ids and their cars after the lots changed.
    fn index(&self, book: &Book) {
        let ids = book
            .by_station
            .values()
            .flat_map(|l| l.robots.iter().map(|r| r.id.clone()))
            .collect();
        *self.robot_ids.write().unwrap_or_else(|e| e.into_inner()) = Some(ids);
        let cars = book
            .by_station
            .values()
            .flat_map(|l| &l.robots)
            .filter_map(|r| match &r.task {
                Task::Car { car } => Some((r.id.clone(), car.clone())),
                _ => None,
            })
            .collect();
        *self.cars.0.write().unwrap_or_else(|e| e.into_inner()) = cars;
    }

    /// Drops the lots read from the store (the duties moved to or from this node): robot
    /// reports not stored yet go with them, and the next use reads the lots again.
    pub(crate) async fn forget(&self) {
        let mut book = self.book.lock().await;
        *book = Book::default();
        *self.robot_ids.write().unwrap_or_else(|e| e.into_inner()) = None;
        self.cars
            .0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    async fn ensure_loaded(&self, book: &mut Book) -> Result<()> {
        if book.loaded {
            return Ok(());
        }
        for (station, text) in self.platform.store.list_documents(DOC_KIND).await? {
            match serde_json::from_str::<LiveLot>(&text) {
                Ok(l) => {
                    book.by_station.insert(station, l);
                }
                // A lot that cannot be read is left in the store for an operator to look at;
                // the rest of the platform runs.
                Err(e) => {
                    tracing::error!(station = %station, error = %e, "stored robot lot is unreadable; skipped")
                }
            }
        }
        book.loaded = true;
        self.index(book);
        Ok(())
    }

    /// The book, locked and read from the store the first time.
    async fn loaded(&self) -> Result<tokio::sync::MutexGuard<'_, Book>> {
        let mut book = self.book.lock().await;
        self.ensure_loaded(&mut book).await?;
        Ok(book)
    }

    async fn store_lot(&self, station: &str, lot: &LiveLot) -> Result<()> {
        let text = serde_json::to_string(lot)
            .map_err(|e| Error::internal(format!("failed to encode the lot: {e}")))?;
        self.platform.fence()?;
        self.platform
            .store
            .put_document(DOC_KIND, station, &text)
            .await?;
        Ok(())
    }

    /// Makes `next` the station's lot after a change: stored first when a car changed (else
    /// marked for the next tick), then swapped in, then told to the event bus.
    async fn commit(
        &self,
        book: &mut Book,
        station: &str,
        next: LiveLot,
        change: Option<Change>,
    ) -> Result<()> {
        let Some(change) = change else {
            return Ok(());
        };
        if change.cars {
            self.store_lot(station, &next).await?;
            book.dirty.remove(station);
        } else {
            book.dirty.insert(station.to_owned());
        }
        book.by_station.insert(station.to_owned(), next);
        self.index(book);
        if change.cars {
            tracing::info!(station, reason = change.reason, "robot lot changed");
        }
        self.platform.publish(Event::LotChanged {
            station_id: station.to_owned(),
            reason: change.reason.to_owned(),
            at: self.platform.now(),
        });
        Ok(())
    }

    /// Applies `change` to a copy of the station's lot, lets the dispatcher act on the result
    /// and commits both: the lot in memory is replaced only once what must be stored is
    /// stored, and a refused change leaves it as it was.
    async fn change_lot(
        &self,
        book: &mut Book,
        station: &str,
        now: f64,
        change: impl FnOnce(&mut LiveLot) -> Result<Option<Change>, LiveError>,
    ) -> Result<()> {
        let mut next = book.lot(station)?.clone();
        let changed = change(&mut next).map_err(live_error)?;
        let changed = Change::merge(changed, next.dispatch(now));
        self.commit(book, station, next, changed).await
    }

    /// Stores the lots whose robot reports are only in memory.
    async fn flush(&self, book: &mut Book) {
        let dirty: Vec<String> = book.dirty.drain().collect();
        for station in dirty {
            let Some(l) = book.by_station.get(&station) else {
                continue;
            };
            if let Err(e) = self.store_lot(&station, l).await {
                tracing::warn!(station = %station, error = %e.message, "robot lot not stored; retrying on the next tick");
                book.dirty.insert(station);
            }
        }
    }

    fn view(&self, station: &str, l: &LiveLot, now: f64) -> LotView {
        lot_view(station, l, now, self.timeout_s())
    }

    // -----------------------------------------------------------------------------------------
    // What staff do.

    /// The stations that have a robot lot, from the store (so a node that has not loaded the
    /// lots yet answers the same).
    pub async fn stations(&self) -> Result<Vec<String>> {
        Ok(self
            .platform
            .store
            .list_documents(DOC_KIND)
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect())
    }

    /// The lot of `station`, live.
    pub async fn lot(&self, station: &str) -> Result<LotView> {
        let book = self.loaded().await?;
        Ok(self.view(station, book.lot(station)?, self.now_s()))
    }

    /// Sets up the lot of `station`, or changes its layout, fleet and robots (cars in bays
    /// that remain are kept).
    pub async fn set_up(&self, station: &str, setup: LotSetup, by: &Caller) -> Result<LotView> {
        let layout = match setup.bays {
            Bays::Count(n) if (1..=live::MAX_BAYS).contains(&n) => {
                let mut l = Lot::service_area(n);
                if let Some(d) = setup.dock {
                    l.dock = d;
                }
                l
            }
            Bays::Count(n) => {
                return Err(Error::invalid(format!(
                    "bays must be 1-{} or a list of points, got {n}",
                    live::MAX_BAYS
                )));
            }
            Bays::Points(points) => Lot {
                bays: points,
                dock: setup
                    .dock
                    .ok_or_else(|| Error::invalid("dock is required with a list of bays"))?,
            },
        };
        live::check_layout(&layout, &setup.fleet, &setup.robots).map_err(live_error)?;
        let store = &self.platform.store;
        store
            .get_station(station)
            .await?
            .ok_or_else(|| Error::not_found(format!("station {station} not found")))?;
        for r in &setup.robots {
            let charger = if valid_charger_id(r) {
                store.get_charger(r).await?
            } else {
                None
            };
            match charger {
                Some(c) if c.station_id == station => {}
                Some(c) => {
                    return Err(Error::invalid(format!(
                        "robot {r} is a charger of station {}, not {station}",
                        c.station_id
                    )));
                }
                None => {
                    return Err(Error::invalid(format!(
                        "robot {} is not a registered charger",
                        r.chars().take(48).collect::<String>()
                    )));
                }
            }
        }
        let now = self.now_s();
        let mut book = self.loaded().await?;
        let (mut next, change) = match book.by_station.get(station) {
            Some(old) => {
                let mut next = old.clone();
                let change = next
                    .relayout(layout, setup.fleet, &setup.robots, now)
                    .map_err(live_error)?;
                (next, change)
            }
            None => {
                let next = LiveLot::new(layout, setup.fleet, &setup.robots).map_err(live_error)?;
                // A new lot is stored whatever happens next.
                let change = Change {
                    reason: "layout",
                    cars: true,
                };
                (next, change)
            }
        };
        let change = Change::merge(Some(change), settle(&mut next, now, self.timeout_s()));
        self.commit(&mut book, station, next, change).await?;
        tracing::info!(station, robots = setup.robots.len(), by = %by.name, "robot lot set up");
        Ok(self.view(station, book.lot(station)?, now))
    }

    /// Removes the lot of `station` with its cars.
    pub async fn remove(&self, station: &str, by: &Caller) -> Result<()> {
        let mut book = self.loaded().await?;
        book.lot(station)?;
        self.platform
            .store
            .delete_document(DOC_KIND, station)
            .await?;
        book.by_station.remove(station);
        self.index(&book);
        book.dirty.remove(station);
        tracing::info!(station, by = %by.name, "robot lot removed");
        self.platform.publish(Event::LotChanged {
            station_id: station.to_owned(),
            reason: "removed".to_owned(),
            at: self.platform.now(),
        });
        Ok(())
    }

    /// A change staff make to the lot of `station` (see [`Lots::change_lot`]), answered with
    /// the lot.
    async fn staff_change(
        &self,
        station: &str,
        change: impl FnOnce(&mut LiveLot, f64) -> Result<Option<Change>, LiveError>,
    ) -> Result<LotView> {
        let now = self.now_s();
        let mut book = self.loaded().await?;
        self.change_lot(&mut book, station, now, |l| change(l, now))
            .await?;
        Ok(self.view(station, book.lot(station)?, now))
    }

    /// Sends `robot` to `car` by hand (the dispatcher leaves the pair alone until released).
    pub async fn assign(
        &self,
        station: &str,
        robot: &str,
        car: &str,
        by: &Caller,
    ) -> Result<LotView> {
        let view = self
            .staff_change(station, |l, now| l.assign(robot, car, now).map(Some))
            .await?;
        tracing::info!(station, robot, car, by = %by.name, "robot sent to a car by hand");
        Ok(view)
    }

    /// Gives `robot` back to the dispatcher.
    pub async fn release(&self, station: &str, robot: &str, by: &Caller) -> Result<LotView> {
        let view = self.staff_change(station, |l, _| l.release(robot)).await?;
        tracing::info!(station, robot, by = %by.name, "robot released from its car");
        Ok(view)
    }

    // -----------------------------------------------------------------------------------------
    // What drivers do.

    /// A car takes a place in a bay of the lot of `station`; the answer's id is unguessable:
    /// knowing it is the capability to follow and cancel that car.
    pub async fn add_car(&self, station: &str, car: CarRequest) -> Result<CarView> {
        let now = self.now_s();
        let mut book = self.loaded().await?;
        let car_id = random_hex(12);
        let new = NewCar {
            id: car_id.clone(),
            bay: car.bay,
            energy_kwh: car.energy_kwh,
            max_power_kw: car
                .max_power_kw
                .unwrap_or(book.lot(station)?.fleet.robot_kw),
            plate: car.plate,
            patience_s: car.patience_s,
        };
        self.change_lot(&mut book, station, now, |l| l.add_car(new, now).map(Some))
            .await?;
        let l = book.lot(station)?;
        let c = l
            .car(&car_id)
            .ok_or_else(|| Error::internal("the car was not kept"))?;
        tracing::info!(station, car = %car_id, bay = c.bay, energy_kwh = c.energy_kwh, "car took a place in the robot lot");
        Ok(car_view(station, l, c, now))
    }

    /// Car `id` as its driver sees it.
    pub async fn car(&self, id: &str) -> Result<CarView> {
        let now = self.now_s();
        let book = self.loaded().await?;
        let station = book.station_of_car(id)?;
        book.car_json(&station, id, now)
    }

    /// The driver of car `id` leaves the lot.
    pub async fn cancel_car(&self, id: &str) -> Result<CarView> {
        let now = self.now_s();
        let mut book = self.loaded().await?;
        let station = book.station_of_car(id)?;
        self.change_lot(&mut book, &station, now, |l| l.cancel_car(id, now))
            .await?;
        let view = book.car_json(&station, id, now)?;
        tracing::info!(station = %station, car = id, "car left the robot lot");
        Ok(view)
    }

    // -----------------------------------------------------------------------------------------
    // What robots do.

    /// A report of `robot`, a charger of `station` whose credentials the edge has checked;
    /// answered with its task.
    pub async fn report(
        &self,
        robot: &str,
        station: &str,
        report: RobotReport,
    ) -> Result<RobotAnswer> {
        let r = Report {
            x: report.x,
            y: report.y,
            battery_kwh: report.battery_kwh,
            state: Reported::parse(&report.state).map_err(live_error)?,
            car: report.car,
        };
        let now = self.now_s();
        let mut book = self.loaded().await?;
        let mut next = match book.by_station.get(station) {
            Some(l) if l.robot(robot).is_some() => l.clone(),
            _ => {
                return Err(Error::not_found(format!(
                    "robot {robot} is in no robot lot"
                )));
            }
        };
        let change = next.apply_report(robot, &r, now).map_err(live_error)?;
        if change.reason == "battery_low" {
            tracing::info!(
                station,
                robot,
                battery_kwh = r.battery_kwh,
                "robot's battery no longer covers its car; sent to the dock"
            );
        }
        let change = Change::merge(Some(change), next.dispatch(now));
        self.commit(&mut book, station, next, change).await?;
        let l = book.lot(station)?;
        let me = l
            .robot(robot)
            .ok_or_else(|| Error::internal("the robot was not kept"))?;
        Ok(RobotAnswer {
            task: task_view(l, &me.task),
            report_every_s: live::REPORT_EVERY_S.round() as u64,
            station_id: station.to_owned(),
            state: l.robot_state(me).as_str(),
            pinned: me.pinned,
        })
    }
}
