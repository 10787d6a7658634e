// tb_thresh_bank: nuq_thresh_bank against a reference count for every code width 1..8,
// both directions, sorted random thresholds with repeats, values on, just below and just
// above thresholds and at the 64-bit extremes; then, with +mem=DIR, every channel of every
// threshold table of a `nuq export` directory.
`timescale 1ns/1ps
module tb_thresh_bank;
    localparam N = 255;
    reg  [63:0] value;
    reg  [N*32-1:0] thr;
    reg  [3:0] bits;
    reg  falling;
    wire [7:0] code;
    nuq_thresh_bank #(.MAXB(8)) dut (.value(value), .thr(thr), .bits(bits), .falling(falling), .code(code));

    integer errors, checks, seed, b, t, i, k, n, ch, li, nl, tbase, dbase, chans, pick;
    reg signed [31:0] th [0:254];
    reg signed [31:0] tmp;
    reg [7:0] expect_v;
    reg [31:0] desc [0:4095];
    reg [31:0] tmem [0:65535];
    reg [0:0] dmem [0:8191];
    reg [8*1024-1:0] memdir, fname;
    task check;
        begin
            #1;
            expect_v = 0;
            for (k = 0; k < n; k = k + 1)
                if (falling ? ($signed(value) <= th[k]) : ($signed(value) >= th[k])) expect_v = expect_v + 1;
            checks = checks + 1;
            if (code !== expect_v) begin
                errors = errors + 1;
                if (errors < 5) $display("FAIL bits=%0d falling=%0d value=%0d got=%0d expected=%0d", bits, falling, $signed(value), code, expect_v);
            end
        end
    endtask
    task probe;   // values around every threshold and at the extremes
        begin
            for (pick = 0; pick < n; pick = pick + 1) begin
                value = {{32{th[pick][31]}}, th[pick]}; check;
                value = $signed(value) - 1; check;
                value = $signed(value) + 2; check;
            end
            value = 64'h8000_0000_0000_0000; check;
            value = 64'h7fff_ffff_ffff_ffff; check;
            value = {$random(seed), $random(seed)}; check;
        end
    endtask
    initial begin
        errors = 0; checks = 0; seed = 9;
        for (b = 1; b <= 8; b = b + 1)
            for (t = 0; t < 6; t = t + 1) begin
                n = (1 << b) - 1;
                bits = b; falling = t & 1;
                for (k = 0; k < N; k = k + 1) th[k] = 0;
                for (k = 0; k < n; k = k + 1) th[k] = (t >= 4) ? ($random(seed) % 8) : ($random(seed) % 5000);
                for (i = 0; i < n; i = i + 1)           // sort ascending
                    for (k = 0; k + 1 < n - i; k = k + 1)
                        if (th[k] > th[k + 1]) begin tmp = th[k]; th[k] = th[k + 1]; th[k + 1] = tmp; end
                for (k = 0; k < N; k = k + 1) thr[32*k +: 32] = th[k];
                probe;
            end
        if ($value$plusargs("mem=%s", memdir)) begin
            $sformat(fname, "%0s/seq_layers.mem", memdir); $readmemh(fname, desc);
            $sformat(fname, "%0s/seq_thresholds.mem", memdir); $readmemh(fname, tmem);
            $sformat(fname, "%0s/seq_dirs.mem", memdir); $readmemh(fname, dmem);
            nl = desc[2];
            chans = 0;
            for (li = 0; li < nl; li = li + 1) begin
                tbase = desc[32 * (li + 1) + 25];
                dbase = desc[32 * (li + 1) + 26];
                if (tbase != 32'hFFFFFFFF) begin
                    b = desc[32 * (li + 1) + 2];
                    n = (1 << b) - 1;
                    bits = b;
                    for (ch = 0; ch < desc[32 * (li + 1) + 12]; ch = ch + 1) begin
                        for (k = 0; k < N; k = k + 1) thr[32*k +: 32] = 0;
                        for (k = 0; k < n; k = k + 1) begin
                            th[k] = tmem[tbase + ch * n + k];
                            thr[32*k +: 32] = th[k];
                        end
                        falling = dmem[dbase + ch];
                        probe;
                        chans = chans + 1;
                    end
                end
            end
            if (chans == 0) begin
                errors = errors + 1;
                $display("FAIL +mem given but no threshold tables found in %0s", memdir);
            end
        end
        if (errors == 0) $display("PASS tb_thresh_bank checks=%0d", checks);
        else $display("FAIL tb_thresh_bank errors=%0d of %0d", errors, checks);
        $finish;
    end
endmodule
