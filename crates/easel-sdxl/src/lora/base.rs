//! Why this exists: a LoRA changes some weights of the UNet and the text encoders for one
//! job and must leave no trace afterwards, without reading the checkpoint again. While a
//! model loads, [`Recorded`] keeps a handle on every tensor each of those components was
//! built from (the same tensors, no copy); applying LoRAs rebuilds a component from those
//! handles with merged copies of the affected weights ([`rebuild_vb`]), and removing them
//! rebuilds it from the handles alone, which gives back the base model bit for bit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};

/// The tensors one component was built from, by the name its code asked for.
#[derive(Clone, Default)]
pub struct Recorded(Arc<Mutex<HashMap<String, Tensor>>>);

impl Recorded {
    /// `vb`, recording every tensor it hands out into `self`.
    pub fn wrap(&self, vb: VarBuilder<'static>) -> VarBuilder<'static> {
        let (dtype, device) = (vb.dtype(), vb.device().clone());
        VarBuilder::from_backend(
            Box::new(Recorder {
                inner: vb,
                into: self.clone(),
            }),
            dtype,
            device,
        )
    }

    /// The recorded tensors (cheap: tensors are reference-counted).
    pub fn tensors(&self) -> HashMap<String, Tensor> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn insert(&self, name: &str, t: &Tensor) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), t.clone());
    }
}

struct Recorder {
    inner: VarBuilder<'static>,
    into: Recorded,
}

impl SimpleBackend for Recorder {
    fn get(&self, s: Shape, name: &str, h: Init, dtype: DType, _dev: &Device) -> candle_core::Result<Tensor> {
        let t = self.inner.get_with_hints_dtype(s, name, h, dtype)?;
        self.into.insert(name, &t);
        Ok(t)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, _dev: &Device) -> candle_core::Result<Tensor> {
        let t = self.inner.get_unchecked_dtype(name, dtype)?;
        self.into.insert(name, &t);
        Ok(t)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.inner.contains_tensor(name)
    }
}

/// A VarBuilder over recorded tensors, with `overrides` in place of some of them.
pub fn rebuild_vb(
    base: Arc<HashMap<String, Tensor>>,
    overrides: HashMap<String, Tensor>,
    dtype: DType,
    device: &Device,
) -> VarBuilder<'static> {
    VarBuilder::from_backend(Box::new(Stored { base, overrides }), dtype, device.clone())
}

struct Stored {
    base: Arc<HashMap<String, Tensor>>,
    overrides: HashMap<String, Tensor>,
}

impl Stored {
    fn lookup(&self, name: &str) -> candle_core::Result<Tensor> {
        match self.overrides.get(name).or_else(|| self.base.get(name)) {
            Some(t) => Ok(t.clone()),
            None => Err(candle_core::Error::CannotFindTensor { path: name.to_string() }.bt()),
        }
    }
}

impl SimpleBackend for Stored {
    fn get(&self, s: Shape, name: &str, _: Init, dtype: DType, _dev: &Device) -> candle_core::Result<Tensor> {
        crate::reader::expect_shape(self.lookup(name)?.to_dtype(dtype)?, s, || name.to_string())
    }

    fn get_unchecked(&self, name: &str, dtype: DType, _dev: &Device) -> candle_core::Result<Tensor> {
        self.lookup(name)?.to_dtype(dtype)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.overrides.contains_key(name) || self.base.contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recording_keeps_the_very_tensors_handed_out_and_rebuilding_serves_them_back() {
        let t = Tensor::arange(0f32, 6.0, &Device::Cpu)
            .unwrap()
            .reshape((2, 3))
            .unwrap();
        let vb = VarBuilder::from_tensors(
            HashMap::from([("a.weight".to_string(), t.clone())]),
            DType::F32,
            &Device::Cpu,
        );
        let rec = Recorded::default();
        let got = rec.wrap(vb).pp("a").get((2, 3), "weight").unwrap();
        let kept = Arc::new(rec.tensors());
        assert_eq!(kept["a.weight"].id(), got.id(), "no copy is made");
        let other = t.ones_like().unwrap();
        let vb = rebuild_vb(
            kept.clone(),
            HashMap::from([("a.weight".to_string(), other)]),
            DType::F32,
            &Device::Cpu,
        );
        assert_eq!(
            vb.get((2, 3), "a.weight")
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap(),
            6.0
        );
        let vb = rebuild_vb(kept, HashMap::new(), DType::F32, &Device::Cpu);
        assert_eq!(vb.get((2, 3), "a.weight").unwrap().id(), got.id());
        assert!(vb.get((3, 2), "a.weight").is_err());
    }
}
