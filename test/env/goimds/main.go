// goimds is the aws-sdk-go-v2 client of the test environment: it asks the EC2 instance metadata
// service for credentials exactly as a Go workload on EC2 would (config.LoadDefaultConfig, so
// AWS_EC2_METADATA_SERVICE_ENDPOINT, AWS_EC2_METADATA_V1_DISABLED etc. apply), then prints them as JSON.
//
//	goimds                      credentials via ec2rolecreds → {"accessKeyId",...}
//	goimds -raw iam/info        GET /latest/meta-data/iam/info through the SDK's IMDS client
//	goimds -dynamic instance-identity/document
//
// Errors go to stderr as {"error": "..."} with exit status 1.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
)

type output struct {
	AccessKeyID     string `json:"accessKeyId"`
	SecretAccessKey string `json:"secretAccessKey"`
	SessionToken    string `json:"sessionToken"`
	Expiration      string `json:"expiration,omitempty"`
}

func main() {
	raw := flag.String("raw", "", "metadata path under /latest/meta-data/ to GET instead of credentials")
	dynamic := flag.String("dynamic", "", "path under /latest/dynamic/ to GET instead of credentials")
	timeout := flag.Duration("timeout", 20*time.Second, "overall deadline")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := run(ctx, *raw, *dynamic); err != nil {
		msg, _ := json.Marshal(map[string]string{"error": err.Error()})
		fmt.Fprintln(os.Stderr, string(msg))
		os.Exit(1)
	}
}

func run(ctx context.Context, raw, dynamic string) error {
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion("us-east-1"))
	if err != nil {
		return fmt.Errorf("load config: %w", err)
	}
	client := imds.NewFromConfig(cfg)
	switch {
	case raw != "":
		out, err := client.GetMetadata(ctx, &imds.GetMetadataInput{Path: raw})
		if err != nil {
			return err
		}
		return copyBody(out.Content)
	case dynamic != "":
		out, err := client.GetDynamicData(ctx, &imds.GetDynamicDataInput{Path: dynamic})
		if err != nil {
			return err
		}
		return copyBody(out.Content)
	}
	provider := ec2rolecreds.New(func(o *ec2rolecreds.Options) { o.Client = client })
	creds, err := provider.Retrieve(ctx)
	if err != nil {
		return err
	}
	o := output{AccessKeyID: creds.AccessKeyID, SecretAccessKey: creds.SecretAccessKey, SessionToken: creds.SessionToken}
	if creds.CanExpire {
		o.Expiration = creds.Expires.UTC().Format(time.RFC3339)
	}
	return json.NewEncoder(os.Stdout).Encode(o)
}

func copyBody(body io.ReadCloser) error {
	defer body.Close()
	_, err := io.Copy(os.Stdout, body)
	return err
}
