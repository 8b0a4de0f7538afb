package examples

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/rampart-proxy/rampart/config"
)

// TestSystemdUnit runs `systemd-analyze verify` on the unit. The unit names
// /usr/local/bin/rampart, which need not exist here, so a copy of the unit
// in a temporary directory points at an executable that does (this test's
// own binary). verify reports most problems as warnings with exit status 0,
// so any line about the unit fails the test.
func TestSystemdUnit(t *testing.T) {
	analyze := lookPath(t, "systemd-analyze", "systemd")
	unit := string(readFile(t, "systemd/rampart.service"))
	for _, want := range []string{
		"ExecStartPre=/usr/local/bin/rampart validate --config /etc/rampart/rampart.yaml",
		"ExecStart=/usr/local/bin/rampart run --config /etc/rampart/rampart.yaml",
		"ExecReload=/bin/kill -HUP $MAINPID",
		"AmbientCapabilities=CAP_NET_BIND_SERVICE",
		"CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
		"DynamicUser=yes",
		"NoNewPrivileges=yes",
		"ProtectSystem=strict",
		"ProtectHome=yes",
		"PrivateTmp=yes",
		"StateDirectory=rampart",
	} {
		if !strings.Contains(unit, "\n"+want+"\n") {
			t.Errorf("rampart.service lacks the line %q", want)
		}
	}
	// The drain must end before systemd kills: TimeoutStopSec above the
	// default shutdown.grace_period.
	if stop := unitValue(unit, "TimeoutStopSec"); stop == "" {
		t.Errorf("rampart.service sets no TimeoutStopSec")
	} else if d, err := config.ParseDuration(stop); err != nil || d.Std() <= config.DefaultGracePeriod {
		t.Errorf("TimeoutStopSec=%s; want more than the default grace period %v", stop, config.DefaultGracePeriod)
	}

	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "rampart")
	if err := os.Symlink(self, bin); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "rampart.service")
	writeFile(t, path, []byte(strings.ReplaceAll(unit, "/usr/local/bin/rampart", bin)))
	cmd := exec.Command(analyze, "verify", "--man=no", path)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "SYSTEMD_LOG_COLOR=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		switch {
		case line == "":
		case strings.Contains(line, path), strings.Contains(line, "rampart.service"):
			t.Errorf("systemd-analyze verify: %s", line)
		default:
			t.Logf("systemd-analyze verify (not about the unit): %s", line)
		}
	}
}

// unitValue returns the last value of key in a unit file.
func unitValue(unit, key string) string {
	v := ""
	for _, line := range strings.Split(unit, "\n") {
		if rest, ok := strings.CutPrefix(line, key+"="); ok {
			v = rest
		}
	}
	return v
}

// TestDockerCompose checks docker-compose.yaml against the files it uses:
// they exist, the ports it publishes are the config's, and Prometheus
// scrapes the admin listener.
func TestDockerCompose(t *testing.T) {
	fakeSecrets(t)
	var c struct {
		Services map[string]struct {
			Build *struct {
				Context    string `yaml:"context"`
				Dockerfile string `yaml:"dockerfile"`
			} `yaml:"build"`
			Image   string   `yaml:"image"`
			Volumes []string `yaml:"volumes"`
			Ports   []string `yaml:"ports"`
			Secrets []string `yaml:"secrets"`
		} `yaml:"services"`
		Secrets map[string]map[string]string `yaml:"secrets"`
	}
	if err := yaml.Unmarshal(readFile(t, "docker-compose.yaml"), &c); err != nil {
		t.Fatalf("docker-compose.yaml: %v", err)
	}
	for _, name := range []string{"rampart", "redis", "demo-a", "demo-b", "prometheus", "grafana"} {
		if _, ok := c.Services[name]; !ok {
			t.Errorf("docker-compose.yaml has no service %s", name)
		}
	}
	mounts := map[string]string{} // container path -> host path
	for name, s := range c.Services {
		if b := s.Build; b != nil {
			if _, err := os.Stat(filepath.Join(b.Context, b.Dockerfile)); err != nil {
				t.Errorf("service %s: build: %v", name, err)
			}
		}
		if s.Build == nil && s.Image == "" {
			t.Errorf("service %s: neither build nor image", name)
		}
		for _, v := range s.Volumes {
			parts := strings.Split(v, ":")
			if len(parts) < 2 || !strings.HasPrefix(parts[0], ".") {
				continue
			}
			if _, err := os.Stat(parts[0]); err != nil {
				t.Errorf("service %s: volume %s: %v", name, v, err)
			}
			mounts[parts[1]] = parts[0]
		}
		for _, p := range s.Ports {
			if !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("service %s: port %s is published beyond the host's loopback", name, p)
			}
		}
		for _, sec := range s.Secrets {
			if _, ok := c.Secrets[sec]; !ok {
				t.Errorf("service %s: secret %s is not defined", name, sec)
			}
		}
	}

	cfgFile := mounts["/etc/rampart/rampart.yaml"]
	if cfgFile == "" {
		t.Fatal("no volume mounts a config at /etc/rampart/rampart.yaml (the image's default)")
	}
	cfg, err := config.Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	published := map[int]bool{}
	for _, p := range c.Services["rampart"].Ports {
		parts := strings.Split(p, ":")
		n, err := strconv.Atoi(parts[len(parts)-1])
		if err != nil {
			t.Fatalf("rampart port %q: %v", p, err)
		}
		published[n] = true
	}
	for name, l := range cfg.Listeners {
		if !published[portOf(t, l.Address)] {
			t.Errorf("listener %s (%s) is not published", name, l.Address)
		}
	}
	if cfg.Admin == nil || !published[portOf(t, cfg.Admin.Address)] {
		t.Errorf("the admin listener is not published")
	}

	// Prometheus scrapes rampart's admin port.
	var prom struct {
		ScrapeConfigs []struct {
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(readFile(t, mounts["/etc/prometheus/prometheus.yml"]), &prom); err != nil {
		t.Fatal(err)
	}
	want := "rampart:" + strconv.Itoa(portOf(t, cfg.Admin.Address))
	found := false
	for _, sc := range prom.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, tg := range st.Targets {
				found = found || tg == want
			}
		}
	}
	if !found {
		t.Errorf("prometheus.yml does not scrape %s", want)
	}
	// The admin API refuses Host names it does not know (DNS rebinding).
	if !slices.Contains(cfg.Admin.Hosts, "rampart") {
		t.Errorf("admin.hosts %q lacks rampart, the name Prometheus scrapes: its requests would get 403", cfg.Admin.Hosts)
	}
	if mounts["/var/lib/grafana/dashboards/rampart.json"] == "" || mounts["/etc/grafana/provisioning"] == "" {
		t.Errorf("grafana does not get the dashboard and its provisioning")
	}
}
