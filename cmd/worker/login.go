package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/openeo-batch/worker/remote"
)

var loginCmd = command{
	name: "login",
	usage: `
Usage: worker login [--provider ID] [--client-id ID] BACKEND_URL

Logs in to an openEO back-end with OpenID Connect (the device code flow):
prints a link and a code, waits until you confirm them in a browser, and
stores the refresh token where the openEO Python client keeps it
(refresh-tokens.json, mode 0600). 'worker run' then logs in by itself, for
as long as the provider lets the refresh token live. A login made with the
Python client works here too, and the other way round.

Example:
  worker login https://openeo.dataspace.copernicus.eu
`,
	run: runLogin,
}

func runLogin(ctx context.Context, fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	provider := fs.String("provider", "", "identity provider `id` (default: as the Python client picks it)")
	clientID := fs.String("client-id", "", "OIDC client `id` (default: the provider's default client)")
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("login: want exactly one BACKEND_URL")
	}
	url := fs.Arg(0)
	c, err := remote.Connect(ctx, url, nil)
	if err != nil {
		return err
	}
	store, err := remote.DefaultTokenStore(os.Getenv)
	if err != nil {
		return err
	}
	authConfig := remote.DefaultAuthConfig(os.Getenv)
	err = c.AuthenticateOIDCDevice(ctx, &remote.OIDCOptions{
		ProviderID: *provider, ClientID: *clientID, Store: store,
		// The client 'openeo-auth add-oidc' stored, as worker run picks it.
		Clients: func(p string) (string, string, error) { return authConfig.OIDCClient(url, p) },
		Prompt: func(dc remote.DeviceCode) {
			fmt.Fprintf(stderr, "To log in, visit %s and enter the code %s\n", dc.VerificationURI, dc.UserCode)
			if dc.VerificationURIComplete != "" {
				fmt.Fprintf(stderr, "or open %s\n", dc.VerificationURIComplete)
			}
			fmt.Fprintln(stderr, "Waiting for you to confirm...")
		},
	})
	if err != nil {
		return fmt.Errorf("log in to %s: %w", url, err)
	}
	if _, err := c.ListJobs(ctx, 1); err != nil {
		return fmt.Errorf("logged in, but the back-end refuses the token: %w", err)
	}
	fmt.Fprintf(stdout, "Logged in to %s; refresh token stored in %s\n", url, store.Path)
	return nil
}
