//! `critic-lstd` computed by parts (docs/scale.md), and the one-table fit with dense features
//! through the same code: a partition of the transitions contributes the moments ΦᵀΦ, ΦᵀΦ̄′, Φᵀr
//! and, for the policy value J, the sum over its episodes of the start state's target features;
//! merged (sums; the action blocks of a partition that saw fewer actions padded with zeros, which
//! is exact), they give θ, its residual or iterations, and J = θ·g / episodes — the one-table
//! result up to the rounding of sums.

use crate::{CriticLstd, Fitted, Model, Target};
use ndarray::{Array1, Array2};
use quiver_critic_kit::setup::{self, FeatureKind};
use quiver_rl::features::{DenseRows, NextTarget};
use quiver_rl::linear::Moments;
use quiver_rl::{FeatureMap, Rff, States, Transitions};
use quiver_sdk::abi::abi_stable::std_types::RVec;
use quiver_sdk::abi::{ErrorKind, PluginError};
use quiver_sdk::serde_json::{json, Value};
use quiver_sdk::{plugin_error, CriticResult, MergeableImpl, Offsets, Tables};

/// What a partition of the transitions contributes with `rff` or `given` features.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DensePartial {
    /// Features per action block (`rff`: dim; `given`: the phi_ columns).
    pub block: usize,
    /// Action blocks (`rff`; 1 for `given`).
    pub n_actions: usize,
    /// The state's dimension (`rff`).
    pub state_dim: usize,
    /// Rows.
    pub rows: u64,
    /// Episodes.
    pub episodes: u64,
    /// ΦᵀΦ, row-major d × d.
    pub c: Vec<f64>,
    /// ΦᵀΦ̄′, row-major d × d.
    pub m: Vec<f64>,
    /// Φᵀr.
    pub b: Vec<f64>,
    /// Σ over the episodes of the start state's target features (π-averaged; the logged action's
    /// for `sarsa`), when J is estimable.
    pub start: Option<Vec<f64>>,
    /// The largest |r| (for the overflow message).
    pub largest_r: f64,
    /// The first and last episode ids (an episode cut between partitions is refused).
    pub span: Option<quiver_rl::EpisodeSpan>,
}

impl DensePartial {
    fn d(&self) -> usize {
        self.block * self.n_actions
    }

    /// This contribution with `n_actions` action blocks (the extra ones zero: exact, as the
    /// blocks are laid out by action).
    fn padded(&self, n_actions: usize) -> DensePartial {
        if n_actions == self.n_actions {
            return self.clone();
        }
        let (d0, d) = (self.d(), self.block * n_actions);
        let grow = |x: &[f64]| {
            let mut out = vec![0.0; d * d];
            for i in 0..d0 {
                out[i * d..i * d + d0].copy_from_slice(&x[i * d0..(i + 1) * d0]);
            }
            out
        };
        let extend = |v: &[f64]| v.iter().copied().chain(std::iter::repeat_n(0.0, d - d0)).collect::<Vec<f64>>();
        DensePartial {
            n_actions,
            c: grow(&self.c),
            m: grow(&self.m),
            b: extend(&self.b),
            start: self.start.as_deref().map(extend),
            ..self.clone()
        }
    }

    /// Two contributions as one (`a`'s rows first).
    pub fn merge(a: &DensePartial, b: &DensePartial) -> Result<DensePartial, PluginError> {
        if a.block != b.block || a.state_dim != b.state_dim {
            return Err(PluginError::input(format!(
                "the partitions of table 'transitions' differ in their features: {} x {} state dimensions against \\
                 {} x {}",
                a.block, a.state_dim, b.block, b.state_dim
            )));
        }
        let k = a.n_actions.max(b.n_actions);
        let (a, b) = (a.padded(k), b.padded(k));
        let add = |x: &[f64], y: &[f64]| x.iter().zip(y).map(|(p, q)| p + q).collect::<Vec<f64>>();
        Ok(DensePartial {
            rows: a.rows + b.rows,
            episodes: a.episodes + b.episodes,
            c: add(&a.c, &b.c),
            m: add(&a.m, &b.m),
            b: add(&a.b, &b.b),
            start: match (&a.start, &b.start) {
                (Some(x), Some(y)) => Some(add(x, y)),
                _ => None,
            },
            largest_r: a.largest_r.max(b.largest_r),
            span: quiver_rl::EpisodeSpan::merge(a.span, b.span).map_err(plugin_error)?,
            ..a
        })
    }

    fn moments(&self) -> Result<Moments, PluginError> {
        let d = self.d();
        let square = |v: &[f64]| {
            Array2::from_shape_vec((d, d), v.to_vec())
                .map_err(|_| PluginError::input("a critic-lstd state with moments of the wrong size"))
        };
        if self.b.len() != d {
            return Err(PluginError::input("a critic-lstd state with moments of the wrong size"));
        }
        Ok(Moments { c: square(&self.c)?, m: square(&self.m)?, b: Array1::from(self.b.clone()) })
    }
}

impl CriticLstd {
    /// The contribution of `data` (table `t`) with `rff` or `given` features.
    pub(crate) fn dense_partial(
        &self,
        t: &quiver_sdk::TableRef<'_>,
        data: &Transitions<'_>,
    ) -> Result<DensePartial, PluginError> {
        let c = &self.config.common;
        let sarsa = self.config.target == Target::Sarsa;
        let largest_r = setup::largest_reward(data.r);
        let episodes = data.episodes.len() as u64;
        let firsts: Vec<usize> = data.first_rows().collect();
        let (mo, block, n_actions, state_dim, start) = if c.features == FeatureKind::Given {
            let given = quiver_critic_kit::read::given_columns(t)?;
            let map = FeatureMap::Given(given.phi.len());
            let mo =
                self.moments(&DenseRows { data, map: &map, given: Some(&given), target: NextTarget::NextAction })?;
            let start = sarsa.then(|| {
                let mut g = vec![0.0; given.phi.len()];
                for &i in &firsts {
                    g.iter_mut().zip(&given.phi).for_each(|(x, col)| *x += col[i]);
                }
                g
            });
            (mo, given.phi.len(), 1, 0, start)
        } else {
            let cols = if sarsa { None } else { Some(quiver_critic_kit::read::policy_columns(t, data)?) };
            let n_actions = data.n_actions.max(cols.as_ref().map_or(0, |p| p.n_actions()));
            let rff = Rff::new(data.states.dim(), c.dim, c.bandwidth, c.seed, n_actions);
            let States::Continuous { s, s_next } = &data.states else { unreachable!("checked by the caller") };
            rff.check_phases(c.bandwidth, s, s_next).map_err(plugin_error)?;
            let map = FeatureMap::Rff(rff.clone());
            let target = cols.as_ref().map_or(NextTarget::NextAction, NextTarget::Columns);
            let mo = self.moments(&DenseRows { data, map: &map, given: None, target })?;
            // Σ_e of the start state's features: block a gets ψ(s₀) times π(a|s₀) (the logged
            // action's block for sarsa)
            let weights: Option<Box<dyn Fn(usize, usize) -> f64 + '_>> =
                match (self.config.target, cols.as_ref().and_then(|p| p.current.as_ref())) {
                    (Target::Sarsa, _) => Some(Box::new(|i, a| f64::from(u8::from(data.a[i] as usize == a)))),
                    (_, Some(pi)) => Some(Box::new(move |i, a| pi[a][i])),
                    (_, None) => None,
                };
            let start = weights.map(|w| {
                let mut g = vec![0.0; rff.dim * n_actions];
                let mut psi = vec![0.0; rff.dim];
                for &i in &firsts {
                    rff.psi(|k| s[k][i], &mut psi);
                    for a in 0..n_actions {
                        let p = w(i, a);
                        g[a * rff.dim..(a + 1) * rff.dim].iter_mut().zip(&psi).for_each(|(x, v)| *x += p * v);
                    }
                }
                g
            });
            (mo, rff.dim, n_actions, rff.state_dim, start)
        };
        Ok(DensePartial {
            block,
            n_actions,
            state_dim,
            rows: data.n as u64,
            episodes,
            c: mo.c.into_raw_vec_and_offset().0,
            m: mo.m.into_raw_vec_and_offset().0,
            b: mo.b.to_vec(),
            start,
            largest_r,
            span: quiver_rl::EpisodeSpan::of(data),
        })
    }

    /// θ and the summary from the contribution of all the data.
    pub(crate) fn finish_dense(&self, p: &DensePartial, summary: &mut Value) -> Result<Fitted, PluginError> {
        let c = &self.config.common;
        let mo = p.moments()?;
        let theta = self.solve(&mo, summary)?;
        setup::ensure_finite_given("values", theta.iter().copied(), || p.largest_r)?;
        let j =
            p.start.as_ref().map(|g| g.iter().zip(theta.iter()).map(|(x, w)| x * w).sum::<f64>() / p.episodes as f64);
        summary["theta"] = json!(theta.to_vec());
        summary["j"] = json!(j);
        let given = c.features == FeatureKind::Given;
        if j.is_none() {
            summary["j_note"] = json!(if given {
                "with given features J needs pi-averaged features at the start states; query V there"
            } else {
                "give pi_<a> columns (pi(a|s) on every row) for the policy value J"
            });
        }
        let model = if given {
            Model::Given
        } else {
            Model::Rff(Rff::new(p.state_dim, c.dim, c.bandwidth, c.seed, p.n_actions))
        };
        Ok(Fitted { ran: self.ctx.clone(), model, theta, summary: summary.take() })
    }

    /// The summary a fit starts from.
    pub(crate) fn summary_head(&self, rows: u64, episodes: u64) -> Value {
        json!({
            "target": self.config.target.to_string(),
            "features": self.config.common.features.to_string(),
            "rows": rows,
            "episodes": episodes,
        })
    }
}

/// `critic-lstd` by parts: `rff` and `given` features (one-hot features index the pairs the data
/// hold, which a partition does not know).
pub struct LstdByParts(pub(crate) CriticLstd);

impl MergeableImpl for LstdByParts {
    type State = DensePartial;
    type Output = CriticResult;
    fn partial(&self, tables: &Tables<'_>, _offsets: &Offsets) -> Result<DensePartial, PluginError> {
        let c = &self.0.config.common;
        if c.features == FeatureKind::OneHot {
            return Err(PluginError::new(
                ErrorKind::Unsupported,
                "features=onehot is not computed by parts (its features are the (state, action) pairs of all the \\
                 data): use features=rff or given, or give the transitions as one table",
            ));
        }
        let t = tables.get("transitions")?;
        let mut data = quiver_critic_kit::read::transitions(&t)?;
        if self.0.config.target == Target::Sarsa {
            data.use_a_next("target=sarsa").map_err(plugin_error)?;
        }
        setup::check_features(c.features, &data.states)?;
        self.0.dense_partial(&t, &data)
    }
    fn merge(&self, a: DensePartial, b: DensePartial) -> Result<DensePartial, PluginError> {
        DensePartial::merge(&a, &b)
    }
    fn finish(&self, state: DensePartial) -> Result<CriticResult, PluginError> {
        let mut summary = self.0.summary_head(state.rows, state.episodes);
        let f = self.0.finish_dense(&state, &mut summary)?;
        let mut out = f.summary;
        out["d"] = json!(f.theta.len());
        Ok(CriticResult { device: f.ran.device(), values: RVec::new(), json: f.ran.result_text(out) })
    }
}
