package examples

import (
	"bytes"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/rampart-proxy/rampart/config"
)

// The parts of Kubernetes objects that the manifests must get right. Fields
// not named here are not checked (kubectl's server-side validation is the
// place for those); the ones named are decoded with their API types.
type (
	object struct {
		APIVersion string   `yaml:"apiVersion"`
		Kind       string   `yaml:"kind"`
		Metadata   metadata `yaml:"metadata"`
		Data       map[string]string
		Spec       yaml.Node `yaml:"spec"`
	}
	metadata struct {
		Name      string            `yaml:"name"`
		Namespace string            `yaml:"namespace"`
		Labels    map[string]string `yaml:"labels"`
	}
	deploymentSpec struct {
		Replicas *int `yaml:"replicas"`
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Metadata metadata `yaml:"metadata"`
			Spec     podSpec  `yaml:"spec"`
		} `yaml:"template"`
	}
	podSpec struct {
		TerminationGracePeriodSeconds *int        `yaml:"terminationGracePeriodSeconds"`
		Containers                    []container `yaml:"containers"`
		Volumes                       []struct {
			Name      string `yaml:"name"`
			ConfigMap *struct {
				Name string `yaml:"name"`
			} `yaml:"configMap"`
			PersistentVolumeClaim *struct {
				ClaimName string `yaml:"claimName"`
			} `yaml:"persistentVolumeClaim"`
		} `yaml:"volumes"`
	}
	container struct {
		Name  string   `yaml:"name"`
		Image string   `yaml:"image"`
		Args  []string `yaml:"args"`
		Env   []struct {
			Name      string `yaml:"name"`
			Value     string `yaml:"value"`
			ValueFrom *struct {
				SecretKeyRef *struct {
					Name string `yaml:"name"`
					Key  string `yaml:"key"`
				} `yaml:"secretKeyRef"`
			} `yaml:"valueFrom"`
		} `yaml:"env"`
		Ports []struct {
			Name          string `yaml:"name"`
			ContainerPort int    `yaml:"containerPort"`
		} `yaml:"ports"`
		ReadinessProbe *probe `yaml:"readinessProbe"`
		LivenessProbe  *probe `yaml:"livenessProbe"`
		Lifecycle      *struct {
			PreStop *struct {
				Sleep *struct {
					Seconds int `yaml:"seconds"`
				} `yaml:"sleep"`
			} `yaml:"preStop"`
		} `yaml:"lifecycle"`
		VolumeMounts []struct {
			Name      string `yaml:"name"`
			MountPath string `yaml:"mountPath"`
			SubPath   string `yaml:"subPath"`
		} `yaml:"volumeMounts"`
	}
	probe struct {
		HTTPGet *struct {
			Path string    `yaml:"path"`
			Port yaml.Node `yaml:"port"` // a number or a port name
		} `yaml:"httpGet"`
		TCPSocket *struct {
			Port yaml.Node `yaml:"port"`
		} `yaml:"tcpSocket"`
	}
	serviceSpec struct {
		Type     string            `yaml:"type"`
		Selector map[string]string `yaml:"selector"`
		Ports    []struct {
			Name       string    `yaml:"name"`
			Port       int       `yaml:"port"`
			TargetPort yaml.Node `yaml:"targetPort"`
		} `yaml:"ports"`
	}
)

// knownKinds are the apiVersion and kind pairs the manifests may use.
var knownKinds = map[string]bool{
	"v1/ConfigMap":                       true,
	"v1/Service":                         true,
	"v1/PersistentVolumeClaim":           true,
	"apps/v1/Deployment":                 true,
	"policy/v1/PodDisruptionBudget":      true,
	"networking.k8s.io/v1/NetworkPolicy": true,
}

// readManifests decodes every YAML document of the files.
func readManifests(t *testing.T, files ...string) []object {
	t.Helper()
	var out []object
	for _, f := range files {
		dec := yaml.NewDecoder(bytes.NewReader(readFile(t, f)))
		for {
			var o object
			err := dec.Decode(&o)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if o.Kind == "" && o.APIVersion == "" {
				continue // an empty document
			}
			if !knownKinds[o.APIVersion+"/"+o.Kind] {
				t.Errorf("%s: unexpected apiVersion %q kind %q", f, o.APIVersion, o.Kind)
			}
			if o.Metadata.Name == "" {
				t.Errorf("%s: a %s without metadata.name", f, o.Kind)
			}
			out = append(out, o)
		}
	}
	return out
}

func decodeSpec[T any](t *testing.T, o object) T {
	t.Helper()
	var s T
	if err := o.Spec.Decode(&s); err != nil {
		t.Fatalf("%s %s: spec: %v", o.Kind, o.Metadata.Name, err)
	}
	return s
}

func TestKubernetesManifests(t *testing.T) {
	fakeSecrets(t)
	for _, dir := range []string{"kubernetes/sidecar", "kubernetes/ingress"} {
		t.Run(dir, func(t *testing.T) {
			files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
			if err != nil || len(files) == 0 {
				t.Fatalf("no manifests in %s (%v)", dir, err)
			}
			checkManifests(t, readManifests(t, files...))
		})
	}
}

// checkManifests checks the objects of one deployment against each other
// and against the Rampart configuration in their ConfigMap.
func checkManifests(t *testing.T, objs []object) {
	configMaps := map[string]object{}
	pods := map[string]podSpec{} // deployment name -> pod
	podLabels := map[string]map[string]string{}
	for _, o := range objs {
		switch o.Kind {
		case "ConfigMap":
			configMaps[o.Metadata.Name] = o
		case "Deployment":
			d := decodeSpec[deploymentSpec](t, o)
			if len(d.Selector.MatchLabels) == 0 || !subset(d.Selector.MatchLabels, d.Template.Metadata.Labels) {
				t.Errorf("Deployment %s: selector %v does not select its pod labels %v", o.Metadata.Name, d.Selector.MatchLabels, d.Template.Metadata.Labels)
			}
			pods[o.Metadata.Name] = d.Template.Spec
			podLabels[o.Metadata.Name] = d.Template.Metadata.Labels
		}
	}
	found := false
	for name, pod := range pods {
		for _, c := range pod.Containers {
			if c.Name == "rampart" {
				found = true
				checkRampartContainer(t, name, pod, c, configMaps)
			}
		}
	}
	if !found {
		t.Errorf("no Deployment has a container named rampart")
	}
	for _, o := range objs {
		if o.Kind != "Service" {
			continue
		}
		s := decodeSpec[serviceSpec](t, o)
		var pod *podSpec
		for name, labels := range podLabels {
			if len(s.Selector) > 0 && subset(s.Selector, labels) {
				p := pods[name]
				pod = &p
			}
		}
		if pod == nil {
			t.Errorf("Service %s: selector %v selects no pod of the manifests", o.Metadata.Name, s.Selector)
			continue
		}
		for _, p := range s.Ports {
			if !podHasPort(*pod, p.TargetPort) {
				t.Errorf("Service %s port %d: targetPort %q is not a container port of the pod", o.Metadata.Name, p.Port, p.TargetPort.Value)
			}
		}
	}
}

// checkRampartContainer checks the rampart container of a pod: its config
// validates, its ports are the config's, the probes ask the admin listener,
// and the drain fits in the termination grace period.
func checkRampartContainer(t *testing.T, deployment string, pod podSpec, c container, configMaps map[string]object) {
	prefix := "Deployment " + deployment + ": container rampart: "
	cfgPath := argAfter(c.Args, "--config")
	if cfgPath == "" || len(c.Args) == 0 || c.Args[0] != "run" {
		t.Fatalf("%sargs %v; want run --config FILE", prefix, c.Args)
	}
	// The config comes from a ConfigMap mounted as a directory (not a
	// subPath, which would never see an update).
	var cm object
	for _, m := range c.VolumeMounts {
		if m.MountPath != filepath.Dir(cfgPath) {
			continue
		}
		if m.SubPath != "" {
			t.Errorf("%s%s is mounted with subPath: ConfigMap updates (hot reload) never reach it", prefix, m.MountPath)
		}
		for _, v := range pod.Volumes {
			if v.Name == m.Name && v.ConfigMap != nil {
				cm = configMaps[v.ConfigMap.Name]
			}
		}
	}
	data, ok := cm.Data[filepath.Base(cfgPath)]
	if !ok {
		t.Fatalf("%s%s does not come from a ConfigMap of the manifests", prefix, cfgPath)
	}
	// The environment variables the config references are the container's.
	for _, e := range c.Env {
		if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
			t.Errorf("%senv %s: secrets belong in a Secret (valueFrom.secretKeyRef)", prefix, e.Name)
		}
	}
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = "fake-" + strings.ToLower(e.Name)
		if strings.HasSuffix(e.Name, "_ENCRYPTION_KEY") {
			env[e.Name] = fakeEncryptionKey // a key has a format
		}
	}
	cfg := parseWithEnv(t, []byte(data), "ConfigMap "+cm.Metadata.Name, env)
	if cfg == nil {
		return
	}
	checkConfig(t, cfg, ".")

	ports := map[int]bool{}
	for _, p := range c.Ports {
		ports[p.ContainerPort] = true
	}
	for name, l := range cfg.Listeners {
		if port := portOf(t, l.Address); !ports[port] {
			t.Errorf("%slistener %s on port %d is not a container port", prefix, name, port)
		}
	}
	if cfg.Admin == nil {
		t.Fatalf("%sthe config has no admin listener for the probes", prefix)
	}
	if host, _, _ := net.SplitHostPort(cfg.Admin.Address); host != "0.0.0.0" && host != "" {
		t.Errorf("%sadmin.address %s: the kubelet probes the pod IP; want 0.0.0.0", prefix, cfg.Admin.Address)
	}
	if cfg.Admin.Token == "" {
		t.Errorf("%sadmin listens on the pod network without admin.token", prefix)
	}
	adminPort := portOf(t, cfg.Admin.Address)
	for _, pr := range []struct {
		kind string
		p    *probe
		path string
	}{{"readinessProbe", c.ReadinessProbe, "/readyz"}, {"livenessProbe", c.LivenessProbe, "/healthz"}} {
		if pr.p == nil || pr.p.HTTPGet == nil {
			t.Errorf("%sno %s.httpGet", prefix, pr.kind)
			continue
		}
		if pr.p.HTTPGet.Path != pr.path {
			t.Errorf("%s%s path %q; want %q", prefix, pr.kind, pr.p.HTTPGet.Path, pr.path)
		}
		if got := containerPort(c, pr.p.HTTPGet.Port); got != adminPort {
			t.Errorf("%s%s port %q is %d; want the admin port %d", prefix, pr.kind, pr.p.HTTPGet.Port.Value, got, adminPort)
		}
	}
	// preStop keeps serving while endpoints are removed; then SIGTERM
	// starts a drain of at most shutdown.grace_period; the kubelet kills at
	// terminationGracePeriodSeconds, counted from the start of preStop.
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil {
		t.Fatalf("%sno preStop sleep", prefix)
	}
	sleep := c.Lifecycle.PreStop.Sleep.Seconds
	grace := int(cfg.Shutdown.GracePeriod.Std().Seconds())
	tgps := 30 // the Kubernetes default
	if pod.TerminationGracePeriodSeconds != nil {
		tgps = *pod.TerminationGracePeriodSeconds
	}
	if tgps <= sleep+grace {
		t.Errorf("%sterminationGracePeriodSeconds %d; want more than preStop %ds + shutdown.grace_period %ds",
			prefix, tgps, sleep, grace)
	}
}

// parseWithEnv parses a config with env as its only environment variables
// (plus those already set).
func parseWithEnv(t *testing.T, data []byte, name string, env map[string]string) *config.Config {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	cfg, err := config.Parse(data, name)
	if err != nil {
		t.Errorf("%s: rampart.yaml does not validate:\n%v", name, err)
		return nil
	}
	return cfg
}

func argAfter(args []string, flag string) string {
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, flag+"="); ok {
			return v
		}
	}
	return ""
}

func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return n
}

// containerPort resolves a port given by number or by name in c.
func containerPort(c container, port yaml.Node) int {
	if n, err := strconv.Atoi(port.Value); err == nil {
		return n
	}
	for _, p := range c.Ports {
		if p.Name == port.Value {
			return p.ContainerPort
		}
	}
	return -1
}

func podHasPort(pod podSpec, port yaml.Node) bool {
	for _, c := range pod.Containers {
		if p := containerPort(c, port); p > 0 {
			for _, cp := range c.Ports {
				if cp.ContainerPort == p {
					return true
				}
			}
		}
	}
	return false
}

// subset reports whether every label of sel is in labels.
func subset(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}
