//! Test support shared by the crates' tests and the system tests. Today: [`fake_k8s`], a fake Kubernetes API
//! server with a simulated scheduler and kubelet, which the Kubernetes spawner is tested against because no
//! machine here can run a real cluster.

pub mod fake_k8s;
