//! Restoring a fresh node's state from its peers' snapshots (see the module above).
//!
//! While this runs the node's network is up but its consensus is not: [`Pump`] holds the
//! network's events, answering peers' requests with a refusal, ignoring gossip and keeping
//! the list of connected peers, which the node replays once it runs.

use super::{Refusal, SnapshotInfo, SnapshotMeta};
use crate::light::verify::{LightBlock, Options};
use crate::light::LightClient;
use crate::store::Store;
use crate::wire::{self, SyncRequest, SyncResponse};
use basalt_p2p::{Event as NetEvent, P2pHandle, PeerId, Verdict};
use basalt_runtime::StateRestore;
use basalt_types::Hash;
use borsh::{BorshDeserialize, BorshSerialize};
use futures::stream::{FuturesUnordered, StreamExt};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Why state sync stopped. Fatal to the start: the operator fixes the cause (or the
/// network) and starts again, and the restore resumes.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("state sync: the light client: {0:#}")]
    Light(anyhow::Error),
    #[error("state sync: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("state sync: the state store: {0}")]
    State(#[from] basalt_runtime::StateError),
    #[error("state sync: {path}: {source}")]
    Progress {
        path: String,
        source: std::io::Error,
    },
    #[error("state sync: {0}")]
    Stopped(String),
}

/// What `[statesync]` says, resolved.
#[derive(Clone, Debug)]
pub struct RestoreSettings {
    /// JSON-RPC servers for the light client: the first is its primary, the rest witnesses.
    pub rpc_servers: Vec<String>,
    pub trust_height: u64,
    pub trust_hash: Hash,
    pub trust_period_s: u64,
    /// Where the light client keeps its verified headers.
    pub light_home: PathBuf,
    /// Where the restore records how far it got (to resume after an interruption).
    pub progress_file: PathBuf,
    /// Chunk requests in flight at once, spread over the peers.
    pub fetchers: usize,
    /// Peers the node dials (its persistent peers): discovery waits a few seconds for them
    /// all, so that chunks come from every peer that has them.
    pub expected_peers: usize,
}

/// Longest wait for the expected peers before the first look for snapshots.
const DISCOVERY: Duration = Duration::from_secs(5);

/// How a download ended, short of an error of this node's own.
enum Downloaded {
    Done,
    /// The snapshot is bad: refused, with the reason.
    Bad(Refusal),
    /// Every peer that offered it failed or left: look again (the chunks stored so far
    /// stay, and the restore resumes).
    OutOfPeers,
}

/// A restore under way, as recorded after each stored chunk.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
struct Progress {
    snapshot: SnapshotInfo,
    applied: u32,
}

/// The network while the node restores: peers are recorded, requests refused, gossip
/// ignored.
pub struct Pump {
    peers: Arc<Mutex<HashMap<PeerId, NetEvent>>>,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<mpsc::Receiver<NetEvent>>,
}

impl Pump {
    pub fn start(p2p: P2pHandle, mut net: mpsc::Receiver<NetEvent>) -> Pump {
        let peers: Arc<Mutex<HashMap<PeerId, NetEvent>>> = Arc::default();
        let (stop, mut stopped) = oneshot::channel();
        let book = peers.clone();
        let task = tokio::spawn(async move {
            loop {
                let e = tokio::select! {
                    _ = &mut stopped => return net,
                    e = net.recv() => match e { Some(e) => e, None => return net },
                };
                match e {
                    NetEvent::PeerConnected { peer, .. } => {
                        book.lock().expect("peer book").insert(peer, e);
                    }
                    NetEvent::PeerDisconnected(p) | NetEvent::PeerBanned(p) => {
                        book.lock().expect("peer book").remove(&p);
                    }
                    // Identify asks again every five minutes: net_info names such a peer
                    // from then on.
                    NetEvent::PeerIdentified { .. } => {}
                    NetEvent::Request(r) => {
                        let no = SyncResponse::Refused("state syncing".into());
                        let _ = p2p.respond(r.id, wire::encode(&no));
                    }
                    NetEvent::Message {
                        source, id, topic, ..
                    } => {
                        let _ = p2p.verdict(id, source, topic, Verdict::Ignore);
                    }
                }
            }
        });
        Pump { peers, stop, task }
    }

    fn peers(&self) -> Vec<PeerId> {
        self.peers
            .lock()
            .expect("peer book")
            .keys()
            .copied()
            .collect()
    }

    /// Stops holding the network: its receiver, and the connections to replay.
    pub async fn finish(self) -> (mpsc::Receiver<NetEvent>, Vec<NetEvent>) {
        let _ = self.stop.send(());
        let net = self.task.await.expect("the pump does not panic");
        let peers = std::mem::take(&mut *self.peers.lock().expect("peer book"));
        (net, peers.into_values().collect())
    }
}

async fn ask(p2p: &P2pHandle, peer: PeerId, r: SyncRequest) -> Result<SyncResponse, String> {
    let bytes = p2p
        .request(peer, wire::encode(&r))
        .await
        .map_err(|e| e.to_string())?;
    wire::decode::<SyncResponse>(&bytes)
}

/// Runs the light client (blocking HTTP) off the async threads.
async fn light<T: Send + 'static>(
    client: Arc<Mutex<LightClient>>,
    f: impl FnOnce(&mut LightClient) -> anyhow::Result<T> + Send + 'static,
) -> Result<T, RestoreError> {
    tokio::task::spawn_blocking(move || f(&mut client.lock().expect("light client")))
        .await
        .map_err(|e| RestoreError::Stopped(e.to_string()))?
        .map_err(RestoreError::Light)
}

/// Restores the state of the latest snapshot the peers offer that verifies, into `store`
/// (which must hold no state, or the pieces of an interrupted restore). Returns its height.
pub async fn restore(
    store: &Store,
    settings: &RestoreSettings,
    p2p: &P2pHandle,
    pump: &Pump,
) -> Result<u64, RestoreError> {
    let options = Options {
        trusting_period_s: settings.trust_period_s,
        ..Options::default()
    };
    let (primary, witnesses) = settings
        .rpc_servers
        .split_first()
        .ok_or_else(|| RestoreError::Stopped("[statesync] rpc_servers is empty".into()))?;
    let (home, primary, witnesses) = (
        settings.light_home.clone(),
        primary.clone(),
        witnesses.to_vec(),
    );
    let trust = (settings.trust_height, settings.trust_hash);
    let client = tokio::task::spawn_blocking(move || {
        LightClient::open(&home, &primary, &witnesses, Some(trust), options)
    })
    .await
    .map_err(|e| RestoreError::Stopped(e.to_string()))?
    .map_err(RestoreError::Light)?;
    let client = Arc::new(Mutex::new(client));
    tracing::info!(
        trust_height = settings.trust_height,
        "state sync: trusted header verified; looking for snapshots"
    );

    let waiting = Instant::now();
    while pump.peers().len() < settings.expected_peers.max(1) && waiting.elapsed() < DISCOVERY {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut progress = read_progress(&settings.progress_file)?;
    let mut rejected: HashSet<SnapshotInfo> = HashSet::new();
    // Peers that sent a bad chunk are not asked again.
    let mut bad_peers: HashSet<PeerId> = HashSet::new();
    let mut waited = 0u32;
    loop {
        let offers = discover(p2p, &pump.peers()).await;
        if let Some(p) = &progress {
            if !offers.contains_key(&p.snapshot) && waited >= 5 {
                tracing::warn!(
                    height = p.snapshot.height,
                    "state sync: no peer offers the snapshot an earlier restore began; starting over"
                );
                store.clear_partial_state()?;
                remove_progress(&settings.progress_file)?;
                progress = None;
            }
        }
        let mut candidates: Vec<(&SnapshotInfo, &Vec<PeerId>)> = offers
            .iter()
            .filter(|(info, _)| !rejected.contains(info) && info.height >= settings.trust_height)
            .collect();
        // The snapshot begun before first, then the highest, the most offered.
        candidates.sort_by_key(|(info, peers)| {
            let resumed = progress.as_ref().is_some_and(|p| p.snapshot == **info);
            (
                std::cmp::Reverse(resumed),
                std::cmp::Reverse(info.height),
                std::cmp::Reverse(peers.len()),
            )
        });
        if candidates.is_empty()
            || (progress.is_some()
                && waited < 5
                && !candidates
                    .iter()
                    .any(|(i, _)| progress.as_ref().is_some_and(|p| p.snapshot == **i)))
        {
            waited += 1;
            if waited.is_multiple_of(5) {
                tracing::info!(
                    peers = pump.peers().len(),
                    "state sync: waiting for peers that offer a snapshot"
                );
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        for (info, peers) in candidates {
            let height = info.height;
            let next = match light(client.clone(), move |c| c.verify_to(height + 1)).await {
                Ok((lb, _)) => lb,
                Err(e) => {
                    tracing::warn!(
                        height,
                        "state sync: cannot verify the header after the snapshot yet: {e}"
                    );
                    continue;
                }
            };
            let Some(meta) = fetch_meta(p2p, info, peers, &next).await else {
                rejected.insert(*info);
                continue;
            };
            let from = match &progress {
                Some(p) if p.snapshot == *info => p.applied,
                _ => {
                    store.clear_partial_state()?;
                    0
                }
            };
            let peers: Vec<PeerId> = peers
                .iter()
                .filter(|p| !bad_peers.contains(p))
                .copied()
                .collect();
            match download(
                store,
                settings,
                p2p,
                &meta,
                peers.clone(),
                from,
                &next,
                &mut bad_peers,
            )
            .await?
            {
                Downloaded::Done => {
                    remove_progress(&settings.progress_file)?;
                    return Ok(height);
                }
                Downloaded::OutOfPeers => {
                    tracing::warn!(
                        height,
                        "state sync: no peer left that serves the snapshot; looking again"
                    );
                    progress = read_progress(&settings.progress_file)?;
                    break;
                }
                Downloaded::Bad(refusal) => {
                    tracing::warn!(height, "state sync: snapshot refused: {refusal}");
                    for p in &peers {
                        let _ = p2p.penalise(*p, format!("a bad state snapshot: {refusal}"));
                    }
                    store.clear_partial_state()?;
                    remove_progress(&settings.progress_file)?;
                    progress = None;
                    rejected.insert(*info);
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Every snapshot the peers list, with who lists it.
async fn discover(p2p: &P2pHandle, peers: &[PeerId]) -> BTreeMap<SnapshotInfo, Vec<PeerId>> {
    let asks = peers
        .iter()
        .map(|p| async move { (*p, ask(p2p, *p, SyncRequest::Snapshots).await) });
    let mut offers: BTreeMap<SnapshotInfo, Vec<PeerId>> = BTreeMap::new();
    for (peer, answer) in futures::future::join_all(asks).await {
        if let Ok(SyncResponse::Snapshots(list)) = answer {
            for info in list.into_iter().take(16) {
                offers.entry(info).or_default().push(peer);
            }
        }
    }
    offers
}

/// The snapshot's metadata from the first peer whose copy hashes to the listed hash and
/// matches the verified header after it.
async fn fetch_meta(
    p2p: &P2pHandle,
    info: &SnapshotInfo,
    peers: &[PeerId],
    next: &LightBlock,
) -> Option<SnapshotMeta> {
    for peer in peers {
        let meta = match ask(
            p2p,
            *peer,
            SyncRequest::SnapshotMeta {
                height: info.height,
            },
        )
        .await
        {
            Ok(SyncResponse::SnapshotMeta(m)) => *m,
            _ => continue,
        };
        let got = meta.hash();
        let checked = if got != info.hash {
            Err(Refusal::MetaHash {
                got,
                want: info.hash,
            })
        } else {
            meta.check(&next.header)
        };
        match checked {
            Ok(()) => return Some(meta),
            Err(e) => {
                tracing::warn!(%peer, height = info.height, "state sync: snapshot metadata refused: {e}");
                let _ = p2p.penalise(*peer, format!("bad snapshot metadata: {e}"));
            }
        }
    }
    None
}

/// Fetches and stores chunks `from..` of `meta` from `peers`, then checks the rebuilt root
/// and stores the snapshot's base.
#[allow(clippy::too_many_arguments)]
async fn download(
    store: &Store,
    settings: &RestoreSettings,
    p2p: &P2pHandle,
    meta: &SnapshotMeta,
    mut peers: Vec<PeerId>,
    from: u32,
    next: &LightBlock,
    bad_peers: &mut HashSet<PeerId>,
) -> Result<Downloaded, RestoreError> {
    let total = meta.chunks.len() as u32;
    let info = meta.info();
    let state = Arc::new(store.latest_state());
    let mut restorer = if from == 0 {
        StateRestore::new(state)
    } else {
        StateRestore::resume(state)?
    };
    tracing::info!(
        height = meta.height,
        chunks = total,
        resumed_at = from,
        mib = format!("{:.1}", meta.bytes as f64 / 1048576.0),
        peers = peers.len(),
        "state sync: restoring a snapshot"
    );
    let started = Instant::now();
    let mut last_log = Instant::now();
    let mut bytes_done = 0u64;
    let mut to_ask: VecDeque<u32> = (from..total).collect();
    // Checked and decoded chunks waiting for the ones before them, with their sizes.
    let mut ready: BTreeMap<u32, (super::Chunk, usize)> = BTreeMap::new();
    let mut in_flight = FuturesUnordered::new();
    let mut turn = 0usize;
    let mut applied = from;
    while applied < total {
        while in_flight.len() < settings.fetchers.max(1)
            && ready.len() < 4 * settings.fetchers.max(1)
        {
            if peers.is_empty() {
                return Ok(Downloaded::OutOfPeers);
            }
            let Some(index) = to_ask.pop_front() else {
                break;
            };
            let peer = peers[turn % peers.len()];
            turn += 1;
            let p2p = p2p.clone();
            let height = meta.height;
            in_flight.push(async move {
                (
                    index,
                    peer,
                    ask(&p2p, peer, SyncRequest::Chunk { height, index }).await,
                )
            });
        }
        let Some((index, peer, answer)) = in_flight.next().await else {
            return Ok(Downloaded::OutOfPeers);
        };
        match answer {
            Ok(SyncResponse::Chunk(bytes)) => match meta.chunk(index, &bytes) {
                Ok(chunk) => {
                    ready.insert(index, (chunk, bytes.len()));
                }
                Err(e) => {
                    tracing::warn!(%peer, index, "state sync: {e}; fetching it elsewhere");
                    let _ = p2p.penalise(peer, format!("a bad snapshot chunk: {e}"));
                    bad_peers.insert(peer);
                    peers.retain(|p| *p != peer);
                    to_ask.push_front(index);
                }
            },
            other => {
                tracing::debug!(%peer, index, "state sync: chunk request failed: {other:?}");
                if other.is_ok() {
                    // A peer that listed the snapshot and will not serve it is of no use.
                    peers.retain(|p| *p != peer);
                }
                to_ask.push_front(index);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        while let Some((chunk, size)) = ready.remove(&applied) {
            let s = store.clone();
            let (r, result) = tokio::task::spawn_blocking(move || {
                let result = super::store_chunk(&s, &mut restorer, applied, &chunk);
                (restorer, result)
            })
            .await
            .map_err(|e| RestoreError::Stopped(e.to_string()))?;
            restorer = r;
            match result {
                Ok(()) => {}
                Err(super::ChunkError::Bad(refusal)) => return Ok(Downloaded::Bad(refusal)),
                Err(super::ChunkError::Store(e)) => return Err(e.into()),
            }
            bytes_done += size as u64;
            applied += 1;
            write_progress(
                &settings.progress_file,
                &Progress {
                    snapshot: info,
                    applied,
                },
            )?;
            if last_log.elapsed() >= Duration::from_secs(1) || applied == total {
                last_log = Instant::now();
                let secs = started.elapsed().as_secs_f64().max(1e-3);
                let rate = bytes_done as f64 / secs;
                let left = meta.bytes.saturating_sub(bytes_done) as f64;
                tracing::info!(
                    chunk = applied,
                    of = total,
                    mib = format!("{:.1}", bytes_done as f64 / 1048576.0),
                    mib_per_s = format!("{:.1}", rate / 1048576.0),
                    eta_s = format!("{:.0}", if rate > 0.0 { left / rate } else { 0.0 }),
                    "state sync: chunks restored"
                );
            }
        }
    }
    if let Err(refusal) = super::finish(store, &restorer, meta, next.header.app_hash)? {
        return Ok(Downloaded::Bad(refusal));
    }
    let root = restorer.root();
    tracing::info!(
        height = meta.height,
        app_hash = %root,
        secs = format!("{:.1}", started.elapsed().as_secs_f64()),
        "state sync: state restored and verified; block sync continues from here"
    );
    Ok(Downloaded::Done)
}

fn read_progress(path: &std::path::Path) -> Result<Option<Progress>, RestoreError> {
    match std::fs::read(path) {
        Ok(b) => Ok(wire::decode(&b).ok()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(RestoreError::Progress {
            path: path.display().to_string(),
            source,
        }),
    }
}

fn write_progress(path: &std::path::Path, p: &Progress) -> Result<(), RestoreError> {
    crate::keys::write_private(path, &wire::encode(p)).map_err(|source| RestoreError::Progress {
        path: path.display().to_string(),
        source,
    })
}

fn remove_progress(path: &std::path::Path) -> Result<(), RestoreError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(RestoreError::Progress {
            path: path.display().to_string(),
            source,
        }),
    }
}
